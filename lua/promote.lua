-- promote.lua: move one due entry from the scheduled set to the pending list, exactly once.
--
-- KEYS[1]  <queue>:task:<id>   the task hash the entry names
-- KEYS[2]  <queue>:scheduled   the scheduled set
-- KEYS[3]  <queue>:pending     the pending list
-- ARGV[1]  the entry (member of the scheduled set)
-- ARGV[2]  now, ms since the epoch
--
-- Returns: 1  the entry was due: removed from the scheduled set, the hash (if it is a hash in state
--             scheduled) set to state=pending, the entry LPUSHed onto pending (it queues behind
--             the tasks already waiting, like a task enqueued at its due time);
--          0  the entry is not in the set (another worker promoted it) or is not due yet.
-- Plain commands: ZSCORE KEYS[2] ARGV[1]; ZREM KEYS[2] ARGV[1]; TYPE KEYS[1];
--   HGET KEYS[1] state; HSET KEYS[1] state pending; LPUSH KEYS[3] ARGV[1]
local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not score or tonumber(score) > tonumber(ARGV[2]) then
  return 0
end
redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('TYPE', KEYS[1])['ok'] == 'hash' and redis.call('HSTRLEN', KEYS[1], 'state') <= 32
    and redis.call('HGET', KEYS[1], 'state') == 'scheduled' then
  redis.call('HSET', KEYS[1], 'state', 'pending')
end
redis.call('LPUSH', KEYS[3], ARGV[1])
return 1
