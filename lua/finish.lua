-- finish.lua: record a task's outcome, release it from executing and announce it, fenced.
--
-- KEYS[1]  <queue>:task:<id>   the task hash
-- KEYS[2]  <queue>:executing   the executing list
-- ARGV[1]  the entry as it sits in executing
-- ARGV[2]  the worker id that owns the task
-- ARGV[3]  the claims value start.lua returned (the fencing token)
-- ARGV[4]  the results channel, <queue>:results
-- ARGV[5]  the message, the task key <queue>:task:<id>
-- ARGV[6..] field/value pairs to write (state=finished, result-value, result, finished-created,
--           or the error-* fields)
--
-- Returns: 1  written, entry removed from executing, message published (in that order);
--          0  fenced: the hash is not executing under this worker and claims value (the task was
--             recovered or taken over); nothing is written;
--         -1  the hash is gone or is not a hash: the entry is removed from executing, nothing else.
-- Events:  PUBLISH ARGV[4] ARGV[5] when it returns 1.
-- Plain commands: TYPE KEYS[1]; HMGET KEYS[1] state worker claims; HSET KEYS[1] ARGV[6..];
--   LREM KEYS[2] 1 ARGV[1]; PUBLISH ARGV[4] ARGV[5]
local task, executing = KEYS[1], KEYS[2]
if redis.call('TYPE', task)['ok'] ~= 'hash' then
  redis.call('LREM', executing, 1, ARGV[1])
  return -1
end
local now = redis.call('HMGET', task, 'state', 'worker', 'claims')
if now[1] ~= 'executing' or now[2] ~= ARGV[2] or now[3] ~= ARGV[3] then
  return 0
end
redis.call('HSET', task, unpack(ARGV, 6))
redis.call('LREM', executing, 1, ARGV[1])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
