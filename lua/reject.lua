-- reject.lua: move an entry that names no usable task hash out of executing into the rejected list.
--
-- KEYS[1]  <queue>:executing   the executing list
-- KEYS[2]  <queue>:rejected    the rejected list (newest first)
-- ARGV[1]  the entry as it sits in executing
-- ARGV[2]  the rejection record, JSON (schema/rejected.schema.json)
-- ARGV[3]  the most records the rejected list keeps
--
-- Returns: 1  the entry left executing and the record was pushed (the list trimmed to ARGV[3]);
--          0  the entry was not in executing: nothing done.
-- Plain commands: LREM KEYS[1] 1 ARGV[1]; LPUSH KEYS[2] ARGV[2]; LTRIM KEYS[2] 0 ARGV[3]-1
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then
  return 0
end
redis.call('LPUSH', KEYS[2], ARGV[2])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
return 1
