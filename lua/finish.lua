-- finish.lua: record a task's outcome, release it from executing and announce it, fenced.
--
-- KEYS[1]  <queue>:task:<id>   the task hash
-- KEYS[2]  <queue>:executing   the executing list
-- KEYS[3]  <queue>:failed      the failed registry (sorted set of ids by finish time, ms)
-- ARGV[1]  the entry as it sits in executing
-- ARGV[2]  the worker id that owns the task
-- ARGV[3]  the claims value start.lua returned (the fencing token)
-- ARGV[4]  the results channel, <queue>:results
-- ARGV[5]  the message, the task key <queue>:task:<id>
-- ARGV[6]  the task id
-- ARGV[7]  '' for a success; for a failure, the finish time in ms since the epoch (the score the
--          id gets in the failed registry)
-- ARGV[8..] field/value pairs to write (state=finished, result-value, result, finished-created,
--           or the error-* fields)
--
-- Returns: 1  written, entry removed from executing, a failed id added to the failed registry,
--             message published (in that order);
--          0  fenced: the hash is not executing under this worker and claims value (the task was
--             recovered or taken over); nothing is written;
--         -1  the hash is gone or is not a hash: the entry is removed from executing, nothing else.
-- Events:  PUBLISH ARGV[4] ARGV[5] when it returns 1.
-- Plain commands: TYPE KEYS[1]; HMGET KEYS[1] state worker claims; HSET KEYS[1] ARGV[8..];
--   LREM KEYS[2] 1 ARGV[1]; [ZADD KEYS[3] ARGV[7] ARGV[6]]; PUBLISH ARGV[4] ARGV[5]
local task, executing = KEYS[1], KEYS[2]
if redis.call('TYPE', task)['ok'] ~= 'hash' then
  redis.call('LREM', executing, 1, ARGV[1])
  return -1
end
local now = redis.call('HMGET', task, 'state', 'worker', 'claims')
if now[1] ~= 'executing' or now[2] ~= ARGV[2] or now[3] ~= ARGV[3] then
  return 0
end
redis.call('HSET', task, unpack(ARGV, 8))
redis.call('LREM', executing, 1, ARGV[1])
if ARGV[7] ~= '' then
  redis.call('ZADD', KEYS[3], ARGV[7], ARGV[6])
end
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
