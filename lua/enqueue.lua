-- enqueue.lua: create a task hash and push its id onto the pending list, atomically.
--
-- KEYS[1]  <queue>:task:<id>   the task hash (must not exist yet)
-- KEYS[2]  <queue>:pending     the pending list
-- ARGV[1]  the entry to push (the bare task id)
-- ARGV[2..] field/value pairs for the hash (function, state=pending, args, pending-created, ...)
--
-- Returns: 1 when the task was created and queued;
--          0 when KEYS[1] already exists (of any type); nothing is written.
-- Events:  none (LPUSH wakes a worker blocked in BLMOVE on the pending list).
-- Plain commands: EXISTS KEYS[1]; HSET KEYS[1] ARGV[2..]; LPUSH KEYS[2] ARGV[1]
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('LPUSH', KEYS[2], ARGV[1])
return 1
