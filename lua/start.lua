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
-- Plain commands: LPOS KEYS[2] ARGV[1]; TYPE KEYS[1]; HSTRLEN KEYS[1] state; HGET KEYS[1] state;
--   HLEN KEYS[1]; HKEYS KEYS[1] + HSTRLEN per field; HGET KEYS[1] claims;
--   HSETNX KEYS[1] pending-created ARGV[3];
--   HSET KEYS[1] state executing executing-created ARGV[3] worker ARGV[2] claims <n>;
--   HSET KEYS[1] lease-expires ARGV[6] or HDEL KEYS[1] lease-expires; HGETALL KEYS[1]
-- >>> lib/start.lua (generated: edit lua/lib/start.lua, then run scripts/build-lua.py)
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
-- <<< lib/start.lua
return start_entry(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6])
