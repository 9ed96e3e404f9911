-- renew.lua: extend the lease of a task its worker still holds, fenced like finish.lua.
--
-- KEYS[1]  <queue>:task:<id>   the task hash
-- ARGV[1]  the worker id that owns the task
-- ARGV[2]  the claims value start.lua returned (the fencing token)
-- ARGV[3]  the lease's new expiry, ms since the epoch
--
-- Returns: 1  renewed: lease-expires=ARGV[3];
--          0  the hash is not executing under this worker and claims value (recovered, taken
--             over, finished) or is not a hash: nothing written; the worker no longer holds it
--             and SHOULD stop its try.
-- Events:  none.
-- Plain commands: TYPE KEYS[1]; HMGET KEYS[1] state worker claims;
--   HSET KEYS[1] lease-expires ARGV[3]
if redis.call('TYPE', KEYS[1])['ok'] ~= 'hash' then
  return 0
end
local now = redis.call('HMGET', KEYS[1], 'state', 'worker', 'claims')
if now[1] ~= 'executing' or now[2] ~= ARGV[1] or now[3] ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], 'lease-expires', ARGV[3])
return 1
