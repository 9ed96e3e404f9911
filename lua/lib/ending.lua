-- lib/ending.lua: the one way a task ends (SPEC.md 3.1, 5.4, 5.5, 5.7, 5.13, 5.14). Not a script
-- of its own: scripts/build-lua.py copies this file, byte for byte, between the marker lines of
-- finish.lua, cancel.lua, release.lua and recover.lua, which stay complete scripts.
--
-- end_task(e) ends the task hash e.task (id e.id) and returns true when its follow-ups are due:
--   HSET e.task <e.fields>; HDEL e.task waiting-for lease-expires
--   ZADD e.registry e.score e.id          <queue>:succeeded on success, else <queue>:failed
--   ZREMRANGEBYSCORE e.registry -inf (e.horizon      only when e.horizon is given and not '0'
--   EXISTS e.dependents; HEXISTS e.task on-success (success) or on-failure (any other outcome)
--   SADD e.releasing e.id                 when either is 1 (then it returns true)
--   HGET e.task result-ttl (success) or failure-ttl; EXPIRE e.task <seconds>, or PERSIST (kept)
--   the outcome message, when e.channel is <queue>:results (SPEC.md 6.1):
--     PUBSUB NUMSUB <queue>:outcomes; when it has subscribers: HSTRLEN e.task <each outcome
--     field>; HMGET e.task <the outcome fields> (unless they are longer than 16384 bytes in all);
--     PUBLISH <queue>:outcomes <JSON>. A refused PUBSUB or PUBLISH (an ACL rule) skips it.
--   PUBLISH e.channel e.message
-- The TTL: the hash's own field when it is a valid value, else e.default (the caller's
-- argument) when it is one, else the protocol default: result-ttl 86400, failure-ttl 604800
-- (defaults in schema/protocol.json). A valid value is a positive integer text of at most 9
-- digits (seconds), or '-1' (kept). So '', '0' or no argument at all mean the protocol default.
local function ending_ttl(value)
  if value == '-1' then
    return -1
  end
  if type(value) == 'string' and #value <= 9 and string.match(value, '^[1-9][0-9]*$') then
    return tonumber(value)
  end
  return nil
end

local OUTCOME_FIELDS = {'result', 'result-value', 'error-code', 'error-reason', 'error-exception'}

-- The outcome message: {"task":<key>,<field>:<value>,...} with the outcome fields the hash has,
-- in the order of OUTCOME_FIELDS, each value a JSON string; only {"task":<key>} when they are
-- longer than the limit (outcome-message-max-bytes in schema/protocol.json).
local function publish_outcome(e)
  if string.sub(e.channel, -8) ~= ':results' then
    return
  end
  local channel = string.sub(e.channel, 1, -8) .. 'outcomes'
  local listening = redis.pcall('PUBSUB', 'NUMSUB', channel)
  if type(listening) ~= 'table' or listening.err or listening[2] == 0 then
    return
  end
  local message = '{"task":' .. cjson.encode(e.message)
  local size = #message
  for _, name in ipairs(OUTCOME_FIELDS) do
    size = size + redis.call('HSTRLEN', e.task, name)
  end
  if size <= 16384 then
    local values = redis.call('HMGET', e.task, unpack(OUTCOME_FIELDS))
    for index, name in ipairs(OUTCOME_FIELDS) do
      if values[index] then
        message = message .. ',"' .. name .. '":' .. cjson.encode(values[index])
      end
    end
  end
  redis.pcall('PUBLISH', channel, message .. '}')
end

local function end_task(e)
  local ttl_field, callback, default_ttl = 'failure-ttl', 'on-failure', 604800
  if e.succeeded then
    ttl_field, callback, default_ttl = 'result-ttl', 'on-success', 86400
  end
  redis.call('HSET', e.task, unpack(e.fields))
  redis.call('HDEL', e.task, 'waiting-for', 'lease-expires')
  redis.call('ZADD', e.registry, e.score, e.id)
  if e.horizon and e.horizon ~= '0' then
    redis.call('ZREMRANGEBYSCORE', e.registry, '-inf', '(' .. e.horizon)
  end
  local followups = redis.call('EXISTS', e.dependents) == 1
    or redis.call('HEXISTS', e.task, callback) == 1
  if followups then
    redis.call('SADD', e.releasing, e.id)
  end
  local own = false
  if redis.call('HSTRLEN', e.task, ttl_field) <= 9 then
    own = redis.call('HGET', e.task, ttl_field)
  end
  local ttl = ending_ttl(own) or ending_ttl(e.default) or default_ttl
  if ttl > 0 then
    redis.call('EXPIRE', e.task, ttl)
  else
    redis.call('PERSIST', e.task)
  end
  publish_outcome(e)
  redis.call('PUBLISH', e.channel, e.message)
  return followups
end
