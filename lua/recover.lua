-- recover.lua: return an entry of the executing list whose worker is gone to the pending list.
--
-- KEYS[1]  <queue>:task:<id>        the task hash named by the entry
-- KEYS[2]  <queue>:executing        the executing list
-- KEYS[3]  <queue>:pending          the pending list
-- KEYS[4]  <queue>:failed           the failed registry
-- KEYS[5]  <queue>:dependents:<id>  ids of tasks waiting for this one
-- KEYS[6]  <queue>:releasing        ids whose follow-ups are due
-- KEYS[7]  <queue>:worker:<owner>   optional: the owner's worker key, given only when ARGV[2] is
--                                   not empty
-- ARGV[1]  the entry as it sits in executing
-- ARGV[2]  the owner the caller read from the hash's worker field, or '' for an entry whose claimer
--          never recorded ownership (the caller has seen it so for at least one lease)
-- ARGV[3]  max claims: the claim of an owned task that is lost this many times (counted in the
--          hash's losses field) fails it with error-code worker-lost instead of requeueing it;
--          '0' for a worker releasing its own task on a forced stop (not counted as a loss)
-- ARGV[4]  now, ISO-8601 UTC (finished-created when it fails)
-- ARGV[5]  the results channel, <queue>:results
-- ARGV[6]  the message, the task key <queue>:task:<id>
-- ARGV[7]  the task id
-- ARGV[8]  now, ms since the epoch (the failed registry's score)
-- ARGV[9]  optional: the caller's default failure-ttl for a task failed as worker-lost: seconds,
--          or '-1' (kept); absent, '0' or '' means the protocol default. The hash's own
--          failure-ttl wins when it is valid (SPEC.md 3.1).
-- ARGV[10] optional: 'lease' when the owner's worker key says it keeps task leases (its leases
--          field is 'task', SPEC.md 9.1): then a live owner does not protect a task whose
--          lease-expires field is an integer below ARGV[8] (the owner stopped renewing it: it gave
--          it up, lost its start reply, or stalled); absent or '': the worker key alone decides.
--
-- Returns: 'requeued'  the entry left executing and was pushed on the consuming end of pending;
--                      an owned hash is set back to state=pending, its losses field incremented
--                      and its worker field removed
--          'failed'    losses reached max-claims: entry removed, finished as
--                      failed/worker-lost, id added to the failed registry (and to releasing
--                      when it has dependents or an on-failure callback), TTL applied, message
--                      published
--          'gone'      the entry is no longer in executing; nothing done
--          'alive'     the owner's worker key still exists (and, with ARGV[10] = 'lease', the
--                      task's lease has not expired); nothing done
--          'changed'   the hash no longer shows ARGV[2] as its executing owner; nothing done
--          'owned'     (ARGV[2] = '') the hash is executing under some owner now; nothing done
-- Events:  PUBLISH ARGV[5] ARGV[6] when it returns 'failed'.
--          Just before it, the outcome message on <queue>:outcomes while that channel has
--          subscribers (SPEC.md 6.1; lib/ending.lua).
-- Plain commands: LPOS KEYS[2] ARGV[1]; TYPE KEYS[1]; HSTRLEN/HGET KEYS[1] state, worker;
--   EXISTS KEYS[7]; [HGET KEYS[1] lease-expires]; HGET KEYS[1] losses;
--   HSET KEYS[1] state pending losses <n>; HDEL KEYS[1] worker lease-expires; RPUSH KEYS[3]
--   ARGV[1]; LREM KEYS[2] 1 ARGV[1];
--   or, for worker-lost, LREM KEYS[2] 1 ARGV[1] and the ending (lib/ending.lua): HSET KEYS[1] state finished result failed
--   error-code worker-lost error-reason ... error-exception '' finished-created ARGV[4]
--   losses <n>; HDEL KEYS[1] waiting-for lease-expires; ZADD KEYS[4] ARGV[8] ARGV[7];
--   EXISTS KEYS[5];
--   HEXISTS KEYS[1] on-failure; [SADD KEYS[6] ARGV[7]]; HGET KEYS[1] failure-ttl;
--   EXPIRE KEYS[1] <seconds> or PERSIST KEYS[1]; PUBLISH ARGV[5] ARGV[6]
-- >>> lib/ending.lua (generated: edit lua/lib/ending.lua, then run scripts/build-lua.py)
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
-- <<< lib/ending.lua
local task, executing, pending = KEYS[1], KEYS[2], KEYS[3]
local entry, owner = ARGV[1], ARGV[2]

if not redis.call('LPOS', executing, entry) then
  return 'gone'
end
if redis.call('TYPE', task)['ok'] ~= 'hash' then
  if owner ~= '' then
    return 'changed'
  end
  redis.call('RPUSH', pending, entry)
  redis.call('LREM', executing, 1, entry)
  return 'requeued'
end

local state, worker = false, false
if redis.call('HSTRLEN', task, 'state') <= 32 then state = redis.call('HGET', task, 'state') end
if redis.call('HSTRLEN', task, 'worker') <= 256 then worker = redis.call('HGET', task, 'worker') end

if owner == '' then
  if state == 'executing' then
    return 'owned'
  end
else
  if state ~= 'executing' or worker ~= owner then
    return 'changed'
  end
  if redis.call('EXISTS', KEYS[7]) == 1 then
    local expires = false
    if ARGV[10] == 'lease' and redis.call('HSTRLEN', task, 'lease-expires') <= 16 then
      expires = tonumber(redis.call('HGET', task, 'lease-expires') or '')
    end
    if not expires or expires ~= expires or expires >= tonumber(ARGV[8]) then
      return 'alive'
    end
  end
end

if owner ~= '' then
  local losses = tonumber(redis.call('HGET', task, 'losses') or '0')
  if not losses or losses ~= losses or losses < 0 or losses > 1e9 then losses = 0 end
  losses = math.floor(losses)
  if ARGV[3] ~= '0' then losses = losses + 1 end
  if ARGV[3] ~= '0' and losses >= tonumber(ARGV[3]) then
    redis.call('LREM', executing, 1, entry)
    end_task({
      task = task, id = ARGV[7], succeeded = false,
      fields = {'state', 'finished', 'result', 'failed', 'error-code', 'worker-lost',
        'error-reason', 'the worker running this task stopped heartbeating ' .. losses .. ' times',
        'error-exception', '', 'finished-created', ARGV[4], 'losses', string.format('%d', losses)},
      registry = KEYS[4], score = ARGV[8],
      dependents = KEYS[5], releasing = KEYS[6], default = ARGV[9],
      channel = ARGV[5], message = ARGV[6],
    })
    return 'failed'
  end
  redis.call('HSET', task, 'state', 'pending', 'losses', string.format('%d', losses))
  redis.call('HDEL', task, 'worker', 'lease-expires')
end
redis.call('RPUSH', pending, entry)
redis.call('LREM', executing, 1, entry)
return 'requeued'
