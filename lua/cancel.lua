-- cancel.lua: cancel a task: at once when it has not started, by request when it is running.
--
-- KEYS[1]  <queue>:task:<id>          the task hash
-- KEYS[2]  <queue>:pending            the pending list
-- KEYS[3]  <queue>:scheduled          the scheduled set
-- KEYS[4]  <queue>:failed             the failed registry
-- KEYS[5]  <queue>:dependents:<id>    ids of tasks waiting for this one
-- KEYS[6]  <queue>:releasing          ids whose follow-ups are due
-- ARGV[1]  the task id
-- ARGV[2]  now, ISO-8601 UTC
-- ARGV[3]  now, ms since the epoch
-- ARGV[4]  the results channel; ARGV[5] the task key (the message, also the full-key entry form)
-- ARGV[6]  seconds the cancelled hash is kept ('0': kept)
--
-- Returns: 1  cancelled before it started (pending, scheduled or waiting): its entries left
--             pending and scheduled, the hash finished with result cancelled, the id joined the
--             failed registry (and <queue>:releasing when it has dependents), message published;
--          2  it is executing: cancel-requested was set; its worker stops it and records
--             result cancelled (section 9.7);
--          0  it has finished already: nothing done;
--         -1  no such task hash.
-- Plain commands: TYPE KEYS[1]; HGET KEYS[1] state; [HSET KEYS[1] cancel-requested ARGV[2]];
--   LREM KEYS[2] 0 ARGV[1]; LREM KEYS[2] 0 ARGV[5]; ZREM KEYS[3] ARGV[1];
--   HSET KEYS[1] state finished result cancelled error-code cancelled ...; ZADD KEYS[4];
--   [SADD KEYS[6] ARGV[1]]; [EXPIRE]; PUBLISH ARGV[4] ARGV[5]
if redis.call('TYPE', KEYS[1])['ok'] ~= 'hash' then
  return -1
end
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'finished' then
  return 0
end
if state == 'executing' then
  redis.call('HSET', KEYS[1], 'cancel-requested', ARGV[2])
  return 2
end
redis.call('LREM', KEYS[2], 0, ARGV[1])
redis.call('LREM', KEYS[2], 0, ARGV[5])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HSET', KEYS[1], 'state', 'finished', 'result', 'cancelled', 'error-code', 'cancelled',
  'error-reason', 'cancelled before it started', 'error-exception', '', 'finished-created', ARGV[2])
redis.call('HDEL', KEYS[1], 'waiting-for')
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
if redis.call('EXISTS', KEYS[5]) == 1 or redis.call('HEXISTS', KEYS[1], 'on-failure') == 1 then
  redis.call('SADD', KEYS[6], ARGV[1])
end
if ARGV[6] ~= '0' then
  redis.call('EXPIRE', KEYS[1], ARGV[6])
end
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
