-- finish.lua: record a task's outcome, release it from executing and announce it, fenced.
--
-- KEYS[1]  <queue>:task:<id>          the task hash
-- KEYS[2]  <queue>:executing          the executing list
-- KEYS[3]  <queue>:failed             registry of tasks that did not succeed (ids by finish ms)
-- KEYS[4]  <queue>:succeeded          registry of tasks that succeeded (ids by finish ms)
-- KEYS[5]  <queue>:dependents:<id>    ids of tasks waiting for this one
-- KEYS[6]  <queue>:releasing          ids whose follow-ups (callbacks, dependents) are due
-- ARGV[1]  the entry as it sits in executing
-- ARGV[2]  the worker id that owns the task
-- ARGV[3]  the claims value start.lua returned (the fencing token)
-- ARGV[4]  the results channel, <queue>:results
-- ARGV[5]  the message, the task key <queue>:task:<id>
-- ARGV[6]  the task id
-- ARGV[7]  now, ms since the epoch (the registry score)
-- ARGV[8]  'succeeded' or 'failed': the registry the id joins
-- ARGV[9]  seconds the hash is kept from now ('0': kept until deleted)
-- ARGV[10] registry entries scored before this many ms since the epoch are dropped ('0': none)
-- ARGV[11..] field/value pairs to write (state=finished, result, ...)
--
-- Returns: 1  written, entry removed from executing, id added to its registry, message
--             published (in that order);
--          2  as 1, and the id was added to <queue>:releasing: the task has dependents, or an
--             on-success / on-failure callback for this outcome (the caller runs the follow-ups);
--          0  fenced: the hash is not executing under this worker and claims value (the task was
--             recovered, taken over or cancelled); nothing is written;
--         -1  the hash is gone or is not a hash: the entry is removed from executing, nothing else.
-- Events:  PUBLISH ARGV[4] ARGV[5] when it returns 1 or 2.
-- Plain commands: TYPE KEYS[1]; HMGET KEYS[1] state worker claims; HSET KEYS[1] ARGV[11..];
--   LREM KEYS[2] 1 ARGV[1]; ZADD <registry> ARGV[7] ARGV[6];
--   [ZREMRANGEBYSCORE <registry> -inf (ARGV[10]]; EXISTS KEYS[5]; HEXISTS KEYS[1] on-success or
--   on-failure; [SADD KEYS[6] ARGV[6]]; [EXPIRE KEYS[1] ARGV[9]]; PUBLISH ARGV[4] ARGV[5]
local task, executing = KEYS[1], KEYS[2]
if redis.call('TYPE', task)['ok'] ~= 'hash' then
  redis.call('LREM', executing, 1, ARGV[1])
  return -1
end
local now = redis.call('HMGET', task, 'state', 'worker', 'claims')
if now[1] ~= 'executing' or now[2] ~= ARGV[2] or now[3] ~= ARGV[3] then
  return 0
end
redis.call('HSET', task, unpack(ARGV, 11))
redis.call('LREM', executing, 1, ARGV[1])

local registry, callback = KEYS[4], 'on-success'
if ARGV[8] == 'failed' then
  registry, callback = KEYS[3], 'on-failure'
end
redis.call('ZADD', registry, ARGV[7], ARGV[6])
if ARGV[10] ~= '0' then
  redis.call('ZREMRANGEBYSCORE', registry, '-inf', '(' .. ARGV[10])
end

local result = 1
if redis.call('EXISTS', KEYS[5]) == 1 or redis.call('HEXISTS', task, callback) == 1 then
  redis.call('SADD', KEYS[6], ARGV[6])
  result = 2
end
if ARGV[9] ~= '0' then
  redis.call('EXPIRE', task, ARGV[9])
end
redis.call('PUBLISH', ARGV[4], ARGV[5])
return result
