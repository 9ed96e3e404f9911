-- release.lua: tell one waiting task that a parent it depends on has finished.
--
-- KEYS[1]  <queue>:task:<child>            the waiting task
-- KEYS[2]  <queue>:pending                 the pending list
-- KEYS[3]  <queue>:dependents:<parent>     the parent's dependents set
-- KEYS[4]  <queue>:failed                  the failed registry
-- KEYS[5]  <queue>:dependents:<child>      the child's own dependents set
-- KEYS[6]  <queue>:releasing               ids whose follow-ups are due
-- ARGV[1]  the child id
-- ARGV[2]  the parent id
-- ARGV[3]  the parent's result (successful, failed, cancelled, expired)
-- ARGV[4]  now, ISO-8601 UTC
-- ARGV[5]  now, ms since the epoch
-- ARGV[6]  the results channel; ARGV[7] the child's task key (the message)
-- ARGV[8]  seconds a failed hash is kept ('0': kept)
--
-- Returns: 0  nothing to do: the child was not in the parent's set (released already) or is no
--             longer waiting;
--          1  the last parent succeeded: the child is pending (LPUSH) and waiting-for is gone;
--          2  a parent succeeded, others are still unfinished: waiting-for decremented;
--          3  the parent did not succeed: the child finished as failed with dependency-failed,
--             joined the failed registry, was published, and (having dependents of its own) was
--             added to <queue>:releasing.
-- Plain commands: SREM KEYS[3] ARGV[1]; TYPE/HGET KEYS[1] state; HINCRBY KEYS[1] waiting-for -1;
--   HSET/HDEL KEYS[1] ...; LPUSH KEYS[2] ARGV[1]; ZADD KEYS[4]; SADD KEYS[6]; PUBLISH
if redis.call('SREM', KEYS[3], ARGV[1]) == 0 then
  return 0
end
if redis.call('TYPE', KEYS[1])['ok'] ~= 'hash' or redis.call('HGET', KEYS[1], 'state') ~= 'waiting' then
  return 0
end
if ARGV[3] == 'successful' then
  if redis.call('HINCRBY', KEYS[1], 'waiting-for', -1) > 0 then
    return 2
  end
  redis.call('HSET', KEYS[1], 'state', 'pending')
  redis.call('HDEL', KEYS[1], 'waiting-for')
  redis.call('LPUSH', KEYS[2], ARGV[1])
  return 1
end
redis.call('HSET', KEYS[1], 'state', 'finished', 'result', 'failed', 'error-code',
  'dependency-failed', 'error-reason', 'task ' .. ARGV[2] .. ' it depends on ended as ' .. ARGV[3],
  'error-exception', '', 'finished-created', ARGV[4])
redis.call('HDEL', KEYS[1], 'waiting-for')
redis.call('ZADD', KEYS[4], ARGV[5], ARGV[1])
if redis.call('EXISTS', KEYS[5]) == 1 or redis.call('HEXISTS', KEYS[1], 'on-failure') == 1 then
  redis.call('SADD', KEYS[6], ARGV[1])
end
if ARGV[8] ~= '0' then
  redis.call('EXPIRE', KEYS[1], ARGV[8])
end
redis.call('PUBLISH', ARGV[6], ARGV[7])
return 3
