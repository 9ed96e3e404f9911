-- recover.lua: return an entry of the executing list whose worker is gone to the pending list.
--
-- KEYS[1]  <queue>:task:<id>        the task hash named by the entry
-- KEYS[2]  <queue>:executing        the executing list
-- KEYS[3]  <queue>:pending          the pending list
-- KEYS[4]  <queue>:failed           the failed registry
-- KEYS[5]  <queue>:dependents:<id>  ids of tasks waiting for this one
-- KEYS[6]  <queue>:releasing        ids whose follow-ups are due
-- KEYS[7]  <queue>:worker:<owner>   the owner's worker key (only when ARGV[2] is not empty)
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
--
-- Returns: 'requeued'  the entry left executing and was pushed on the consuming end of pending;
--                      an owned hash is set back to state=pending, its losses field incremented
--                      and its worker field removed
--          'failed'    losses reached max-claims: finished as failed/worker-lost,
--                      entry removed, id added to the failed registry (and to releasing when it
--                      has dependents or an on-failure callback), message published
--          'gone'      the entry is no longer in executing; nothing done
--          'alive'     the owner's worker key still exists; nothing done
--          'changed'   the hash no longer shows ARGV[2] as its executing owner; nothing done
--          'owned'     (ARGV[2] = '') the hash is executing under some owner now; nothing done
-- Plain commands: LPOS; TYPE; HMGET KEYS[1] state worker claims; EXISTS KEYS[7];
--   LREM KEYS[2] 1 ARGV[1]; HGET KEYS[1] losses; HSET KEYS[1] state pending losses <n>;
--   HDEL KEYS[1] worker; RPUSH KEYS[3] ARGV[1]
local task, executing, pending = KEYS[1], KEYS[2], KEYS[3]
local entry, owner = ARGV[1], ARGV[2]

if not redis.call('LPOS', executing, entry) then
  return 'gone'
end
if redis.call('TYPE', task)['ok'] ~= 'hash' then
  if owner ~= '' then
    return 'changed'
  end
  redis.call('LREM', executing, 1, entry)
  redis.call('RPUSH', pending, entry)
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
    return 'alive'
  end
end

redis.call('LREM', executing, 1, entry)
if owner ~= '' then
  local losses = tonumber(redis.call('HGET', task, 'losses') or '0')
  if not losses or losses ~= losses or losses < 0 or losses > 1e9 then losses = 0 end
  losses = math.floor(losses)
  if ARGV[3] ~= '0' then losses = losses + 1 end
  if ARGV[3] ~= '0' and losses >= tonumber(ARGV[3]) then
    redis.call('HSET', task, 'state', 'finished', 'result', 'failed', 'error-code', 'worker-lost',
      'error-reason', 'the worker running this task stopped heartbeating ' .. losses .. ' times',
      'error-exception', '', 'finished-created', ARGV[4], 'losses', string.format('%d', losses))
    redis.call('ZADD', KEYS[4], ARGV[8], ARGV[7])
    if redis.call('EXISTS', KEYS[5]) == 1 or redis.call('HEXISTS', task, 'on-failure') == 1 then
      redis.call('SADD', KEYS[6], ARGV[7])
    end
    redis.call('PUBLISH', ARGV[5], ARGV[6])
    return 'failed'
  end
  redis.call('HSET', task, 'state', 'pending', 'losses', string.format('%d', losses))
  redis.call('HDEL', task, 'worker')
end
redis.call('RPUSH', pending, entry)
return 'requeued'
