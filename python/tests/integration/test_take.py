"""take.lua through Ops.take (SPEC.md 5.18): claim and start up to N entries in one call, with the
results a claim (LMOVE) and start.lua per entry would have given."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from dothis.store.execute import SyncStore
from dothis.store.ops import TAKE_MAX, Limits, Ops, ScriptCall
from dothis.store.replies import Refused, Rejected, Skipped, Started, Taken, Unstarted
from dothis.wire.protocol import ErrorCode, Keys, Outcome, RejectCode
from dothis.wire.records import Claim, Ending

LIMITS = Limits(max_value_bytes=1024, max_fields=64)
TIMESTAMPS = (b"pending-created", b"executing-created")


def fill(r: redis.Redis, keys: Keys) -> list[bytes]:
    """Pending entries for every reply of take.lua, oldest first; returns them in claim order."""
    task = keys.task
    r.hset(task("ok"), mapping={"function": "echo", "state": "pending", "args": '{"text": "x"}'})
    r.hset(task("full"), mapping={"function": "echo", "args": "{}"})  # typed by hand: no state
    r.hset(task("dup"), mapping={"function": "echo", "state": "executing", "worker": "other",
                                 "claims": "3"})  # fmt: skip
    r.hset(task("big"), mapping={"function": "echo", "state": "pending", "args": "x" * 2000})
    r.hset(task("odd"), mapping={"function": "echo", "state": "paused"})
    r.set(task("str"), "not a hash")
    r.hset(task("héllo"), mapping={"function": "echo", "state": "pending", "args": "{}"})
    order = [b"ok", task("full").encode(), b"dup", b"missing", b"big", b"odd", b"str",
             b"bad id", "héllo".encode(), b"\xff\xfe"]  # fmt: skip
    r.lpush(keys.pending, *order)  # LPUSH one by one: the first is the oldest, claimed first
    return order


def by_entry(taken: list[Taken]) -> dict[bytes, Any]:
    return {item.entry: item.reply for item in taken}


@pytest.fixture
def store(r: redis.Redis) -> SyncStore:
    return SyncStore(r)


def test_take_claims_and_starts_in_claim_order(r, store, queue_name) -> None:
    keys = Keys(queue_name)
    order = fill(r, keys)
    taken = store.run(Ops(keys).take("w1", LIMITS, 20))
    assert [item.entry for item in taken] == order  # fewer pending than asked: all of them
    assert r.exists(keys.pending) == 0
    replies = by_entry(taken)
    ok = replies[b"ok"]
    assert isinstance(ok, Started) and ok.claims == 1 and ok.fields[b"worker"] == b"w1"
    assert isinstance(replies[keys.task("full").encode()], Started)  # the full-key form
    assert replies[b"dup"] == Skipped("the task is already executing")
    assert replies[b"missing"] == Rejected(RejectCode.MISSING_HASH, "the task hash does not exist")
    big = replies[b"big"]
    assert isinstance(big, Refused) and big.code == ErrorCode.TOO_LARGE and big.claims == 1
    odd = replies[b"odd"]
    assert isinstance(odd, Refused) and odd.code == ErrorCode.INVALID_STATE
    assert replies[b"str"] == Rejected(
        RejectCode.WRONG_TYPE, "the task key is a string, not a hash"
    )
    for entry in (b"bad id", "héllo".encode(), b"\xff\xfe"):
        assert replies[entry] == Unstarted()  # left claimed: the worker rejects or starts it
    # the duplicate entry left executing; every other one is there, newest claim on the left
    assert r.lrange(keys.executing, 0, -1) == [e for e in reversed(order) if e != b"dup"]
    assert r.hgetall(keys.task("dup"))[b"claims"] == b"3"  # untouched
    owned = r.hgetall(keys.task("ok"))
    assert owned[b"state"] == b"executing" and owned[b"claims"] == b"1"
    assert b"lease-expires" not in owned


def test_take_stops_at_count_and_on_empty(r, store, queue_name) -> None:
    keys = Keys(queue_name)
    ops = Ops(keys)
    assert store.run(ops.take("w1", LIMITS, 5)) == []
    for n in range(3):
        r.hset(keys.task(f"t{n}"), mapping={"function": "echo", "state": "pending"})
        r.lpush(keys.pending, f"t{n}")
    first = store.run(ops.take("w1", LIMITS, 2, lease_ms=60_000))
    assert [item.entry for item in first] == [b"t0", b"t1"]
    assert r.lrange(keys.pending, 0, -1) == [b"t2"]
    assert int(r.hget(keys.task("t0"), "lease-expires") or 0) > 0
    assert [item.entry for item in store.run(ops.take("w1", LIMITS, 2))] == [b"t2"]


def test_take_gives_what_claim_and_start_give(r, store, queue_name) -> None:
    """The same entries through take.lua and through LMOVE + start.lua: the same replies, the same
    hashes (but for the times) and the same executing list."""
    take_keys, start_keys = Keys(queue_name + "a"), Keys(queue_name + "b")
    fill(r, take_keys)
    fill(r, start_keys)
    taken = store.run(Ops(take_keys).take("w1", LIMITS, 20))
    by_start: list[Any] = []
    ops = Ops(start_keys)
    while (entry := store.run(ops.claim())) is not None:
        task_id, _ = start_keys.parse_entry(entry)
        plain = task_id is not None and task_id.isascii()
        reply = store.run(ops.start(entry, task_id, "w1", LIMITS)) if plain else Unstarted()
        by_start.append((entry, reply))

    def same(reply: Any) -> Any:
        if isinstance(reply, Started):
            return {k: v for k, v in reply.fields.items() if k not in TIMESTAMPS}
        return reply

    def norm(keys: Keys, entry: bytes) -> bytes:
        return entry.removeprefix(keys.task_prefix.encode())

    assert [(norm(take_keys, e), same(x)) for e, x in taken] == [
        (norm(start_keys, e), same(x)) for e, x in by_start
    ]
    for task_id in ("ok", "full", "dup", "big", "odd", "héllo"):
        a, b = r.hgetall(take_keys.task(task_id)), r.hgetall(start_keys.task(task_id))
        assert {k: v for k, v in a.items() if k not in TIMESTAMPS} == {
            k: v for k, v in b.items() if k not in TIMESTAMPS
        }
    assert [norm(take_keys, e) for e in r.lrange(take_keys.executing, 0, -1)] == [
        norm(start_keys, e) for e in r.lrange(start_keys.executing, 0, -1)
    ]


def test_a_taken_task_finishes_as_a_started_one(r, store, queue_name) -> None:
    """Additive: finish.lua accepts the claims value take.lua returned, as start.lua's."""
    keys = Keys(queue_name)
    ops = Ops(keys)
    r.hset(keys.task("t"), mapping={"function": "echo", "state": "pending"})
    r.lpush(keys.pending, "t")
    [(entry, reply)] = store.run(ops.take("w1", LIMITS, 1))
    assert isinstance(reply, Started)
    ending = Ending(Outcome.SUCCESSFUL, ["state", "finished", "result", "successful"])
    finished = store.run(ops.finish(Claim(entry, "t", "w1", reply.claims), ending, 60))
    assert finished.value == 1
    assert r.hget(keys.task("t"), "state") == b"finished"
    assert r.exists(keys.executing) == 0


@pytest.mark.parametrize("count", [0, -1, TAKE_MAX + 1, True, 2.0])
def test_ops_refuses_a_count_out_of_range(queue_name, count) -> None:
    with pytest.raises(ValueError, match="take count"):
        Ops(Keys(queue_name)).take("w1", LIMITS, count)


@pytest.mark.parametrize(
    ("position", "value"), [(5, "0"), (5, "1001"), (5, "x"), (6, "other:task:")]
)
def test_the_script_refuses_bad_arguments_before_moving(
    r, store, queue_name, position, value
) -> None:
    keys = Keys(queue_name)
    r.hset(keys.task("t"), mapping={"function": "echo", "state": "pending"})
    r.lpush(keys.pending, "t")
    call = Ops(keys).take("w1", LIMITS, 1)
    args = list(call.args)
    args[position] = value
    with pytest.raises(redis.ResponseError, match=r"take\.lua"):
        store.run(ScriptCall("take", call.keys, args, call.parse))
    assert r.lrange(keys.pending, 0, -1) == [b"t"]
    assert r.exists(keys.executing) == 0


def test_the_worker_role_may_take_and_a_refusal_names_the_task_pattern(
    r, store, queue_name
) -> None:
    """SPEC.md 15: take.lua needs no rule beyond the worker's; without ~<q>:task:* the refusal of
    a task hash it built names that pattern, although the hash is not in its KEYS."""
    from dothis.errors import PermissionDenied
    from dothis.store.acl import key_pattern, rules

    keys = Keys(queue_name)
    user, password = f"take-{queue_name}", "secret"
    worker_rules = rules("worker", [queue_name])
    r.execute_command(*worker_rules.setuser(user, password))
    settings = r.connection_pool.connection_kwargs
    client = redis.Redis(host=settings["host"], port=settings["port"], db=settings.get("db", 0),
                         username=user, password=password)  # fmt: skip
    try:
        r.hset(keys.task("t"), mapping={"function": "echo", "state": "pending"})
        r.lpush(keys.pending, "t", "u")
        [(entry, reply)] = SyncStore(client).run(Ops(keys).take("w1", LIMITS, 1))
        assert entry == b"t" and isinstance(reply, Started)
        task_rule = f"~{key_pattern(queue_name, 'task')}"
        others = [rule for rule in worker_rules.keys if rule != task_rule]
        r.execute_command("ACL", "SETUSER", user, "resetkeys", *others)
        with pytest.raises(PermissionDenied) as refused:
            SyncStore(client).run(Ops(keys).take("w1", LIMITS, 1))
        assert task_rule in refused.value.rules
    finally:
        client.close()
        r.execute_command("ACL", "DELUSER", user)


@pytest.mark.parametrize("lease_ms", [None, 30_000])
def test_the_fields_start_returns_are_the_hash_after_it(r, store, queue_name, lease_ms) -> None:
    """start.lua and take.lua read the hash once, before they write it, and reply with the fields
    it has after the write: a pending-created added, a lease written or an old one removed."""
    keys = Keys(queue_name)
    ops = Ops(keys)
    hashes = {
        "plain": {"function": "echo", "state": "pending", "args": "{}",
                  "pending-created": "2026-01-01T00:00:00.000000Z"},
        "by-hand": {"function": "echo", "args": "{}"},  # no state, no pending-created
        "old-lease": {"function": "echo", "state": "pending", "lease-expires": "1", "claims": "4"},
    }  # fmt: skip
    for task_id, fields in hashes.items():
        r.hset(keys.task(task_id), mapping=fields)
    r.lpush(keys.pending, "plain", "by-hand")
    taken = by_entry(store.run(ops.take("w1", LIMITS, 5, lease_ms)))
    r.lpush(keys.pending, "old-lease")
    entry = store.run(ops.claim())
    started = {**taken, entry: store.run(ops.start(entry, "old-lease", "w1", LIMITS, lease_ms))}
    for task_id in hashes:
        reply = started[task_id.encode()]
        assert isinstance(reply, Started)
        assert reply.fields == r.hgetall(keys.task(task_id))
        assert (b"lease-expires" in reply.fields) == (lease_ms is not None)
        assert reply.fields[b"state"] == b"executing" and reply.fields[b"worker"] == b"w1"
    assert started[b"old-lease"].claims == 5
    by_hand = started[b"by-hand"].fields
    assert by_hand[b"pending-created"] == by_hand[b"executing-created"]
    assert started[b"plain"].fields[b"pending-created"] == b"2026-01-01T00:00:00.000000Z"


def test_a_long_state_is_named_by_its_size(r, store, queue_name) -> None:
    """A state of more than 32 bytes is invalid-state, named by its size, read or not."""
    keys = Keys(queue_name)
    ops = Ops(keys)
    r.hset(keys.task("long"), mapping={"function": "echo", "state": "p" * 40})
    r.hset(keys.task("long-big"), mapping={"state": "p" * 40, "args": "x" * 2000})
    r.lpush(keys.pending, "long", "long-big")
    replies = by_entry(store.run(ops.take("w1", LIMITS, 5)))
    long = replies[b"long"]
    assert isinstance(long, Refused) and long.code == ErrorCode.INVALID_STATE
    assert "'a value of 40 bytes'" in long.detail
    big = replies[b"long-big"]
    assert isinstance(big, Refused) and big.code == ErrorCode.TOO_LARGE
    assert r.hget(keys.task("long"), "state") == b"executing"
