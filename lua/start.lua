-- start.lua: take ownership of an entry a worker has just moved into the executing list.
--
-- KEYS[1]  <queue>:task:<id>   the task hash named by the entry
-- KEYS[2]  <queue>:executing   the executing list
-- ARGV[1]  the entry exactly as it was moved (bare id or full-key form)
-- ARGV[2]  the worker id
-- ARGV[3]  now, ISO-8601 UTC with microseconds and Z (becomes executing-created)
-- ARGV[4]  max bytes of any field name or value
-- ARGV[5]  max number of fields
-- ARGV[6]  optional: the task lease's expiry, ms since the epoch (SPEC.md 9.2): written as the
--          hash's lease-expires field; absent or '': the field is removed (the worker key alone
--          is the lease, as for a worker that does not keep task leases)
--
-- Returns one of:
--   {'ok', claims, {field, value, ...}}  the worker owns the task; run it
--   {'too-large', claims, detail}        owned; the worker fails it with error-code too-large
--   {'invalid-state', claims, state}     owned; the worker fails it with error-code invalid-state
--   {'duplicate', state}                 the hash is already executing or finished: this one entry
--                                        was removed from executing; the hash is untouched
--   {'missing'}                          KEYS[1] does not exist: the worker rejects the entry
--   {'wrong-type', type}                 KEYS[1] is not a hash: the worker rejects the entry
--   {'lost'}                             the entry is no longer in executing (it was recovered):
--                                        the worker does nothing
-- Owning means: pending-created=ARGV[3] if the hash had none (a task typed by hand),
--   state=executing, executing-created=ARGV[3], worker=ARGV[2], claims incremented, and
--   lease-expires=ARGV[6] (or no lease-expires field).
-- claims is the fencing token the worker passes back to finish.lua.
-- The body is lib/start.lua's start_entry, which take.lua (SPEC.md 5.18) shares.
-- Plain commands: LPOS KEYS[2] ARGV[1]; HLEN KEYS[1] (on a type error: TYPE KEYS[1]);
--   HKEYS KEYS[1] + HSTRLEN per field; then, sizes within the limits: HGETALL KEYS[1] and
--   HSET KEYS[1] [pending-created ARGV[3], when absent] state executing executing-created ARGV[3]
--   worker ARGV[2] claims <n> [lease-expires ARGV[6]] (HDEL KEYS[1] lease-expires when there is
--   no ARGV[6] and the field exists); too large: HSTRLEN KEYS[1] state; HGET KEYS[1] state;
--   HGET KEYS[1] claims; HSETNX KEYS[1] pending-created ARGV[3]; the same HSET without
--   pending-created; HDEL KEYS[1] lease-expires without ARGV[6]
-- >>> lib/start.lua (generated: edit lua/lib/start.lua, then run scripts/build-lua.py)
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
-- <<< lib/start.lua
return start_entry(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6])
