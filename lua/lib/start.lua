-- lib/start.lua: taking ownership of one claimed entry (SPEC.md 5.3, 5.18). Not a script of its
-- own: scripts/build-lua.py copies this file, byte for byte, between the marker lines of start.lua
-- and take.lua, which stay complete scripts.
--
-- start_entry(task, executing, entry, worker, now, max_bytes, max_fields, lease, moved) applies
-- start.lua to the entry `entry` of the list `executing`, naming the hash `task`, and returns
-- start.lua's reply (the table of its header). max_bytes and max_fields are numbers; lease is the
-- lease's expiry text, or nil or '' for none; moved is true when the caller has itself just moved
-- the entry into executing (take.lua), so that it is there and is not looked for.
--
-- The size checks (HLEN, HKEYS, HSTRLEN) come before any value is read. When they pass, one
-- HGETALL reads the fields, state and claims among them, and one HSET takes ownership; the reply
-- holds the fields as HGETALL would list them after that HSET. Only a too-large hash reads state
-- and claims on their own (HSTRLEN and HGET) and writes with HSETNX, HSET and HDEL.
local function start_entry(task, executing, entry, worker, now, max_bytes, max_fields, lease, moved)
  if not moved and not redis.call('LPOS', executing, entry) then
    return {'lost'}
  end
  -- 0 when there is no such key (Redis keeps no empty hash); an error when it is not a hash
  local count = redis.pcall('HLEN', task)
  if type(count) ~= 'number' then
    local kind = redis.call('TYPE', task)['ok']
    if kind ~= 'hash' and kind ~= 'none' then
      return {'wrong-type', kind}
    end
    count = redis.call('HLEN', task) -- not a type error: this raises it
  end
  if count == 0 then
    return {'missing'}
  end

  local status, detail = 'ok', ''
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

  local fields, at, state, claims = false, {}, false, false
  if status == 'ok' then
    fields = redis.call('HGETALL', task)
    for i = 1, #fields, 2 do
      at[fields[i]] = i
    end
    state = at['state'] and fields[at['state'] + 1] or false
    claims = at['claims'] and fields[at['claims'] + 1] or false
    if state and #state > 32 then
      state = 'a value of ' .. #state .. ' bytes'
    end
  else
    local state_bytes = redis.call('HSTRLEN', task, 'state')
    if state_bytes <= 32 then
      state = redis.call('HGET', task, 'state')
    else
      state = 'a value of ' .. state_bytes .. ' bytes'
    end
  end
  if state == 'executing' or state == 'finished' then
    redis.call('LREM', executing, 1, entry)
    return {'duplicate', state}
  end
  if status == 'ok' and state and state ~= 'pending' then
    status, detail = 'invalid-state', string.sub(state, 1, 32)
  end

  if not fields then
    claims = redis.call('HGET', task, 'claims')
  end
  claims = tonumber(claims or '0')
  if not claims or claims ~= claims or claims < 0 or claims > 1e9 then claims = 0 end
  claims = math.floor(claims) + 1
  local written = {'state', 'executing', 'executing-created', now, 'worker', worker,
    'claims', string.format('%d', claims)}
  local leased = lease and lease ~= ''
  if leased then
    written[#written + 1] = 'lease-expires'
    written[#written + 1] = lease
  end
  if not fields then
    redis.call('HSETNX', task, 'pending-created', now)
    redis.call('HSET', task, unpack(written))
    if not leased then
      redis.call('HDEL', task, 'lease-expires')
    end
    return {status, claims, detail}
  end

  -- pending-created first, as HSETNX then HSET would add it
  if not at['pending-created'] then
    table.insert(written, 1, now)
    table.insert(written, 1, 'pending-created')
  end
  redis.call('HSET', task, unpack(written))
  for i = 1, #written, 2 do
    local index = at[written[i]]
    if index then
      fields[index + 1] = written[i + 1]
    else
      fields[#fields + 1] = written[i]
      fields[#fields + 1] = written[i + 1]
    end
  end
  if not leased and at['lease-expires'] then
    redis.call('HDEL', task, 'lease-expires')
    local index = at['lease-expires']
    table.remove(fields, index)
    table.remove(fields, index)
  end
  if status ~= 'ok' then
    return {status, claims, detail}
  end
  return {'ok', claims, fields}
end
