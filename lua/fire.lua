-- fire.lua: enqueue one occurrence of a periodic or cron schedule, exactly once however many
-- workers try.
--
-- KEYS[1]  <queue>:periodic         hash: schedule name -> the last occurrence fired (ms)
-- KEYS[2]  <queue>:task:<id>        the occurrence's task hash
-- KEYS[3]  <queue>:pending          the pending list
-- ARGV[1]  the schedule name
-- ARGV[2]  the occurrence, ms since the epoch
-- ARGV[3]  the task id
-- ARGV[4..] field/value pairs for the hash
--
-- Returns: 1  fired: the occurrence is recorded and the task queued (LPUSH);
--          2  armed: the schedule had never fired; the occurrence is recorded, not fired (a new
--             schedule first fires at its next occurrence);
--          0  this occurrence, or a later one, was fired already: nothing done.
-- Plain commands: HGET KEYS[1] ARGV[1]; HSET KEYS[1] ARGV[1] ARGV[2]; EXISTS KEYS[2];
--   HSET KEYS[2] ARGV[4..]; LPUSH KEYS[3] ARGV[3]
local recorded = redis.call('HGET', KEYS[1], ARGV[1])
if not recorded then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return 2
end
local last = tonumber(recorded)
if last and last >= tonumber(ARGV[2]) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
redis.call('HSET', KEYS[2], unpack(ARGV, 4))
redis.call('LPUSH', KEYS[3], ARGV[3])
return 1
