-- requeue.lua: give a failed task a fresh start: out of the failed registry, back onto pending.
--
-- KEYS[1]  <queue>:task:<id>   the task hash
-- KEYS[2]  <queue>:failed      the failed registry
-- KEYS[3]  <queue>:pending     the pending list
-- ARGV[1]  the task id
--
-- Returns: 1  the id was in the failed registry and its hash is a finished task whose result is
--             not successful: the id removed from the registry; the outcome fields (result,
--             result-value, finished-created, error-code, error-reason, error-exception) and
--             retries, losses and scheduled-for deleted; state=pending; the id LPUSHed onto pending;
--          0  the id is not in the failed registry (never failed, or requeued already);
--         -1  the id is in the registry but its hash is gone: the id is removed from the registry;
--          2  the id is in the registry but its hash is not a failed task (state is not finished,
--             e.g. the id was reused by a task that waits or runs now, or result is successful):
--             the stale id is removed from the registry, nothing else is changed.
-- Plain commands: ZREM KEYS[2] ARGV[1]; TYPE KEYS[1]; HMGET KEYS[1] state result;
--   HDEL KEYS[1] result result-value finished-created error-code error-reason error-exception
--   cancel-requested retries losses scheduled-for; HSET KEYS[1] state pending; PERSIST KEYS[1];
--   LPUSH KEYS[3] ARGV[1]
if redis.call('ZREM', KEYS[2], ARGV[1]) == 0 then
  return 0
end
if redis.call('TYPE', KEYS[1])['ok'] ~= 'hash' then
  return -1
end
local ending = redis.call('HMGET', KEYS[1], 'state', 'result')
if ending[1] ~= 'finished' or ending[2] == 'successful' then
  return 2  -- requeueing it would start a second run of a task that runs, or undo a success
end
redis.call('HDEL', KEYS[1], 'result', 'result-value', 'finished-created', 'error-code',
  'error-reason', 'error-exception', 'cancel-requested', 'retries', 'losses', 'scheduled-for')
redis.call('HSET', KEYS[1], 'state', 'pending')
redis.call('PERSIST', KEYS[1])  -- the failure-ttl of its ending must not expire a queued task
redis.call('LPUSH', KEYS[3], ARGV[1])
return 1
