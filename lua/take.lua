-- take.lua: claim and start up to ARGV[6] entries in one call (SPEC.md 5.18): for each, exactly the
-- claim's LMOVE (5.2) and then start.lua (5.3), atomically, in one round trip.
--
-- KEYS[1]  <queue>:pending     the pending list
-- KEYS[2]  <queue>:executing   the executing list
-- ARGV[1]  the worker id
-- ARGV[2]  now, ISO-8601 UTC with microseconds and Z (becomes executing-created)
-- ARGV[3]  max bytes of any field name or value
-- ARGV[4]  max number of fields
-- ARGV[5]  the task lease's expiry, ms since the epoch, as start.lua's ARGV[6] (SPEC.md 9.2);
--          '' for none (then each started hash loses its lease-expires field)
-- ARGV[6]  count: how many entries to take at most, integer text from 1 to 1000
-- ARGV[7]  the task-key prefix <queue>:task: of the queue of KEYS[1] (the hash of an entry whose
--          id is <id> is ARGV[7] .. <id>); it must equal KEYS[1] with pending replaced by task:
--
-- Up to ARGV[6] times: LMOVE KEYS[1] KEYS[2] RIGHT LEFT; it stops when pending is empty. For each
-- entry moved, its id is the entry with the prefix ARGV[7] removed once when it begins with it,
-- else the whole entry (SPEC.md 2.2). When that id is 1 to 256 bytes of printable ASCII without
-- space (bytes 0x21 to 0x7E, always a valid id), start.lua's logic runs on the entry at once, for
-- the hash ARGV[7] .. <id>. Any other entry stays claimed and unstarted: the caller handles it
-- as a claimed entry of 5.2 at once (rejects it with invalid-id, or calls start.lua).
--
-- Returns an array with one item per entry moved, in claim order ({} when pending was empty);
-- each item is {entry, reply}: the entry exactly as moved, and reply one of start.lua's replies:
--   {'ok', claims, {field, value, ...}}  the worker owns the task; run it
--   {'too-large', claims, detail}        owned; the worker fails it with error-code too-large
--   {'invalid-state', claims, state}     owned; the worker fails it with error-code invalid-state
--   {'duplicate', state}                 the hash is already executing or finished: this one entry
--                                        was removed from executing; the hash is untouched
--   {'missing'}                          no such hash: the worker rejects the entry (missing-hash)
--   {'wrong-type', type}                 the key is not a hash: the worker rejects the entry
--   {'unstarted'}                        claimed, not started: the worker handles it as in 5.2
-- ('lost', start.lua's last reply, cannot occur: the script has just moved the entry itself.)
-- Errors: an error reply, before anything is moved, when ARGV[6] is not an integer from 1 to 1000,
--   or when ARGV[7] or KEYS[2] is not a key of the queue of KEYS[1].
-- Plain commands: per entry, LMOVE KEYS[1] KEYS[2] RIGHT LEFT, then start.lua's commands with
--   KEYS[1] = ARGV[7] .. <id>, KEYS[2] = KEYS[2], ARGV[1] = the entry and ARGV[2..6] = ARGV[1..5]
--   (lib/start.lua), except LPOS: the entry has just been moved. The task hashes are the only keys outside KEYS, built from ARGV[7] and so
--   in the queue's slot (SPEC.md 11).
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

local pending, executing = KEYS[1], KEYS[2]
local worker, now, lease, prefix = ARGV[1], ARGV[2], ARGV[5], ARGV[7]
local max_bytes, max_fields = tonumber(ARGV[3]), tonumber(ARGV[4])

local count = ARGV[6] and string.match(ARGV[6], '^[1-9][0-9]?[0-9]?[0-9]?$') and tonumber(ARGV[6])
if not count or count > 1000 then
  return redis.error_reply('ERR take.lua: the count (ARGV[6]) must be an integer from 1 to 1000')
end
local queue = string.sub(pending, -8) == ':pending' and string.sub(pending, 1, -9)
if not queue or prefix ~= queue .. ':task:' or executing ~= queue .. ':executing' then
  return redis.error_reply('ERR take.lua: KEYS[2] and ARGV[7] must be the executing list and the task-key prefix of the queue of KEYS[1]')
end

local taken = {}
for _ = 1, count do
  local entry = redis.call('LMOVE', pending, executing, 'RIGHT', 'LEFT')
  if not entry then
    break
  end
  local id = entry
  if string.sub(entry, 1, #prefix) == prefix then
    id = string.sub(entry, #prefix + 1)
  end
  local reply = {'unstarted'}
  if #id >= 1 and #id <= 256 and string.find(id, '^[!-~]+$') then
    reply = start_entry(prefix .. id, executing, entry, worker, now, max_bytes, max_fields, lease, true)
  end
  taken[#taken + 1] = {entry, reply}
end
return taken
