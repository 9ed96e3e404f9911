-- retry.lua: end a failed try of a task that has attempts left: schedule its next try, fenced.
--
-- KEYS[1]  <queue>:task:<id>   the task hash
-- KEYS[2]  <queue>:executing   the executing list
-- KEYS[3]  <queue>:scheduled   the scheduled set (entries by due time, ms since the epoch)
-- ARGV[1]  the entry as it sits in executing
-- ARGV[2]  the worker id that owns the task
-- ARGV[3]  the claims value start.lua returned (the fencing token)
-- ARGV[4]  the due time of the next try, ms since the epoch
-- ARGV[5..] field/value pairs to write (state=scheduled, retries, scheduled-for, and the
--           error-* fields of the try that failed)
--
-- Returns: 1  written, the worker and lease-expires fields removed, entry moved from executing
--             to the scheduled set;
--          0  fenced (as finish.lua): nothing written;
--         -1  the hash is gone or is not a hash: the entry is removed from executing.
-- Events:  none (the task has not finished).
-- Plain commands: TYPE KEYS[1]; HMGET KEYS[1] state worker claims; HSET KEYS[1] ARGV[5..];
--   HDEL KEYS[1] worker lease-expires; LREM KEYS[2] 1 ARGV[1]; ZADD KEYS[3] ARGV[4] ARGV[1]
local task, executing = KEYS[1], KEYS[2]
if redis.call('TYPE', task)['ok'] ~= 'hash' then
  redis.call('LREM', executing, 1, ARGV[1])
  return -1
end
local now = redis.call('HMGET', task, 'state', 'worker', 'claims')
if now[1] ~= 'executing' or now[2] ~= ARGV[2] or now[3] ~= ARGV[3] then
  return 0
end
redis.call('HSET', task, unpack(ARGV, 5))
redis.call('HDEL', task, 'worker', 'lease-expires')
redis.call('LREM', executing, 1, ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
return 1
