-- delete.lua: delete one task that is not running: its hash and every entry of it (SPEC.md 5.17).
--
-- KEYS[1]  <queue>:task:<id>          the task hash
-- KEYS[2]  <queue>:pending            the pending list
-- KEYS[3]  <queue>:scheduled          the scheduled set
-- KEYS[4]  <queue>:waiting            the index of waiting tasks
-- KEYS[5]  <queue>:failed             the failed registry
-- KEYS[6]  <queue>:succeeded          the succeeded registry
-- KEYS[7]  <queue>:dependents:<id>    ids of tasks waiting for this one
-- KEYS[8]  <queue>:releasing          ids whose follow-ups are due
-- ARGV[1]  the task id
-- ARGV[2]  the task key <queue>:task:<id>: the full-key form of its entry
--
-- Returns: 1  deleted: the hash was pending, scheduled, waiting or finished; its entries left
--             pending, scheduled, waiting, failed and succeeded, the hash was deleted, and when
--             tasks wait for it the id joined <queue>:releasing (its follow-ups then release them
--             as if the parent vanished: dependency-failed, SPEC.md 5.13);
--          2  it is executing: nothing done (cancel it first, SPEC.md 5.14);
--         -1  no such task hash: its stale entries (if any) were removed all the same.
-- Plain commands: TYPE KEYS[1]; HSTRLEN, HGET KEYS[1] state; LREM KEYS[2] 0 ARGV[1]; LREM KEYS[2] 0
--   ARGV[2]; ZREM KEYS[3] ARGV[1]; ZREM KEYS[4] ARGV[1]; ZREM KEYS[5] ARGV[1];
--   ZREM KEYS[6] ARGV[1]; DEL KEYS[1]; EXISTS KEYS[7]; [SADD KEYS[8] ARGV[1]]
local task, id = KEYS[1], ARGV[1]
local found = redis.call('TYPE', task)['ok'] == 'hash'
if found and redis.call('HSTRLEN', task, 'state') <= 32
    and redis.call('HGET', task, 'state') == 'executing' then
  return 2
end
redis.call('LREM', KEYS[2], 0, id)
redis.call('LREM', KEYS[2], 0, ARGV[2])
redis.call('ZREM', KEYS[3], id)
redis.call('ZREM', KEYS[4], id)
redis.call('ZREM', KEYS[5], id)
redis.call('ZREM', KEYS[6], id)
if not found then
  return -1
end
redis.call('DEL', task)
if redis.call('EXISTS', KEYS[7]) == 1 then
  redis.call('SADD', KEYS[8], id)
end
return 1
