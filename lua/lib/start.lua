-- lib/start.lua: taking ownership of one claimed entry (SPEC.md 5.3, 5.18). Not a script of its
-- own: scripts/build-lua.py copies this file, byte for byte, between the marker lines of start.lua
-- and take.lua, which stay complete scripts.
--
-- start_entry(task, executing, entry, worker, now, max_bytes, max_fields, lease) applies start.lua
-- to the entry `entry` of the list `executing`, naming the hash `task`, and returns start.lua's
-- reply (the table of its header). max_bytes and max_fields are numbers; lease is the lease's
-- expiry text, or nil or '' for none.
local function start_entry(task, executing, entry, worker, now, max_bytes, max_fields, lease)
  if not redis.call('LPOS', executing, entry) then
    return {'lost'}
  end
  local kind = redis.call('TYPE', task)['ok']
  if kind == 'none' then
    return {'missing'}
  end
  if kind ~= 'hash' then
    return {'wrong-type', kind}
  end

  local state = false
  local state_bytes = redis.call('HSTRLEN', task, 'state')
  if state_bytes <= 32 then
    state = redis.call('HGET', task, 'state')
  else
    state = 'a value of ' .. state_bytes .. ' bytes'
  end
  if state == 'executing' or state == 'finished' then
    redis.call('LREM', executing, 1, entry)
    return {'duplicate', state}
  end

  local status, detail = 'ok', ''
  local count = redis.call('HLEN', task)
  if count > max_fields then
    status, detail = 'too-large', 'the hash has ' .. count .. ' fields (limit ' .. max_fields .. ')'
  else
    for _, field in ipairs(redis.call('HKEYS', task)) do
      local size = redis.call('HSTRLEN', task, field)
      if #field > max_bytes or size > max_bytes then
        status = 'too-large'
        detail = 'field ' .. string.sub(field, 1, 64) .. ' holds ' .. size .. ' bytes (limit ' .. max_bytes .. ')'
        break
      end
    end
  end
  if status == 'ok' and state and state ~= 'pending' then
    status, detail = 'invalid-state', string.sub(state, 1, 32)
  end

  local claims = tonumber(redis.call('HGET', task, 'claims') or '0')
  if not claims or claims ~= claims or claims < 0 or claims > 1e9 then claims = 0 end
  claims = math.floor(claims) + 1
  redis.call('HSETNX', task, 'pending-created', now)
  redis.call('HSET', task, 'state', 'executing', 'executing-created', now,
    'worker', worker, 'claims', string.format('%d', claims))
  if lease and lease ~= '' then
    redis.call('HSET', task, 'lease-expires', lease)
  else
    redis.call('HDEL', task, 'lease-expires')
  end
  if status ~= 'ok' then
    return {status, claims, detail}
  end
  return {'ok', claims, redis.call('HGETALL', task)}
end
