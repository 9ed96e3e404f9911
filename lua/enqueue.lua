-- enqueue.lua: create a task hash and queue it, atomically: on pending, in the scheduled set, or
-- waiting for parent tasks.
--
-- KEYS[1]  <queue>:task:<id>        the task hash
-- KEYS[2]  <queue>:pending          the pending list
-- KEYS[3]  <queue>:scheduled        the scheduled set
-- KEYS[4..] for each parent, two keys: <queue>:task:<parent> and <queue>:dependents:<parent>
-- KEYS[4+2N] <queue>:waiting       the index of waiting tasks (optional: given when the key count
--          is 4+2N; a task that waits joins it with score 0)
-- ARGV[1]  the task id (the entry pushed)
-- ARGV[2]  where it goes: 'back' (LPUSH, the normal case), 'front' (RPUSH: the next to run), or a
--          due time in ms since the epoch (ZADD <queue>:scheduled)
-- ARGV[3]  '1': an existing finished hash with this id is replaced; '0': any existing key refuses
-- ARGV[4]  the number of parents, N
-- ARGV[5..4+N] the parent ids
-- ARGV[5+N..] field/value pairs for the hash (function, state, args, pending-created, ...)
--
-- Returns: 1   created; queued, scheduled, or (with unfinished parents) state=waiting with
--              waiting-for = their number and the id added to each unfinished parent's dependents
--              set and to <queue>:waiting when given (the task is then in no list: release.lua
--              queues it)
--          0   KEYS[1] exists and is not a finished hash (or ARGV[3] is '0'): nothing written
--         -2   a parent has finished without success: nothing written
--         -3   a parent does not exist: nothing written
-- Events:  none.
-- Plain commands: EXISTS/TYPE/HGET KEYS[1] state; per parent TYPE, HMGET state result;
--   [DEL KEYS[1]]; HSET KEYS[1] ARGV[5+N..]; per unfinished parent SADD <dependents> ARGV[1];
--   then HSET KEYS[1] state waiting waiting-for <n> [ZADD KEYS[4+2N] 0 ARGV[1]], or
--   LPUSH/RPUSH KEYS[2] ARGV[1], or ZADD KEYS[3] <due> ARGV[1]
local task, pending, scheduled = KEYS[1], KEYS[2], KEYS[3]
local id, placement, replace = ARGV[1], ARGV[2], ARGV[3]
local parents = tonumber(ARGV[4])

local replacing = false
if redis.call('EXISTS', task) == 1 then
  if replace ~= '1' or redis.call('TYPE', task)['ok'] ~= 'hash'
      or redis.call('HGET', task, 'state') ~= 'finished' then
    return 0
  end
  replacing = true
end

local unfinished = {}
for i = 1, parents do
  local hash = KEYS[2 + 2 * i]
  if redis.call('TYPE', hash)['ok'] ~= 'hash' then
    return -3
  end
  local state = redis.call('HMGET', hash, 'state', 'result')
  if state[1] == 'finished' then
    if state[2] ~= 'successful' then
      return -2
    end
  else
    table.insert(unfinished, KEYS[3 + 2 * i])
  end
end

if replacing then
  redis.call('DEL', task)
end
redis.call('HSET', task, unpack(ARGV, 5 + parents))
if #unfinished > 0 then
  for _, dependents in ipairs(unfinished) do
    redis.call('SADD', dependents, id)
  end
  redis.call('HSET', task, 'state', 'waiting', 'waiting-for', tostring(#unfinished))
  if #KEYS == 4 + 2 * parents then
    redis.call('ZADD', KEYS[#KEYS], 0, id)
  end
elseif placement == 'back' then
  redis.call('LPUSH', pending, id)
elseif placement == 'front' then
  redis.call('RPUSH', pending, id)
else
  redis.call('ZADD', scheduled, placement, id)
end
return 1
