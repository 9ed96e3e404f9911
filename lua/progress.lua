-- progress.lua: a running task reports how far it got (SPEC.md 5.16).
--
-- KEYS[1]  <queue>:task:<id>          the task hash
-- ARGV[1]  the claims value start.lua returned to this worker for this try (the fencing token)
-- ARGV[2]  the worker id
-- ARGV[3]  the progress: a JSON object {"fraction": 0 to 1, "message": text (may be left
--          out), "updated": a timestamp}
-- ARGV[4]  the progress channel, <queue>:progress
-- ARGV[5]  the message, the task key <queue>:task:<id>
--
-- Returns: 1  written and published;
--          0  the task is not this worker's running try (no hash, not executing, or claimed
--             again since): nothing written.
-- Events:  PUBLISH ARGV[4] ARGV[5] when it returns 1.
-- Plain commands: TYPE KEYS[1]; HMGET KEYS[1] state claims worker; HSET KEYS[1] progress ARGV[3];
--   PUBLISH ARGV[4] ARGV[5]
if redis.call('TYPE', KEYS[1])['ok'] ~= 'hash' then
  return 0
end
local held = redis.call('HMGET', KEYS[1], 'state', 'claims', 'worker')
if held[1] ~= 'executing' or held[2] ~= ARGV[1] or held[3] ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], 'progress', ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
