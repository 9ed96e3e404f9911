"""The Lua scripts, called directly: each status of start, finish's fencing, recovery, reject."""

from __future__ import annotations

import pytest
import redis

from dothis.store.scripts import register
from dothis.wire.protocol import Keys

pytestmark = pytest.mark.integration
NOW = "2026-01-01T00:00:00.000000Z"


class Scripts:
    """The registered scripts as attributes: these tests call the Lua bytes directly."""

    def __init__(self, client: redis.Redis) -> None:
        self.__dict__.update(register(client))


@pytest.fixture
def env(r: redis.Redis, queue_name: str) -> tuple[redis.Redis, Scripts, Keys]:
    return r, Scripts(r), Keys(queue_name)


def claim(r: redis.Redis, keys: Keys) -> bytes:
    entry = r.lmove(keys.pending, keys.executing, "RIGHT", "LEFT")
    assert entry is not None
    return bytes(entry)


def start(s: Scripts, keys: Keys, entry: bytes, task_id: str, worker: str = "w1") -> list:
    return s.start(keys=[keys.task(task_id), keys.executing],
                   args=[entry, worker, NOW, 1024, 16])  # fmt: skip


def test_enqueue_refuses_an_existing_id(env) -> None:
    r, s, keys = env
    base = [keys.task("a"), keys.pending, keys.scheduled]
    assert s.enqueue(keys=base, args=["a", "back", "1", 0, "function", "echo"]) == 1
    assert s.enqueue(keys=base, args=["a", "back", "1", 0, "function", "x"]) == 0
    assert r.hget(keys.task("a"), "function") == b"echo"
    assert r.lrange(keys.pending, 0, -1) == [b"a"]
    r.hset(keys.task("a"), "state", "finished")
    assert s.enqueue(keys=base, args=["a", "back", "0", 0, "function", "x"]) == 0
    assert s.enqueue(keys=base, args=["a", "front", "1", 0, "function", "y"]) == 1  # replaced
    assert r.hgetall(keys.task("a")) == {b"function": b"y"}
    assert r.lrange(keys.pending, 0, -1) == [b"a", b"a"]


def test_enqueue_with_parents(env) -> None:
    r, s, keys = env
    base = [keys.task("c"), keys.pending, keys.scheduled]
    r.hset(keys.task("ok"), mapping={"state": "finished", "result": "successful"})
    r.hset(keys.task("bad"), mapping={"state": "finished", "result": "failed"})
    r.hset(keys.task("busy"), mapping={"state": "executing"})

    def parents(*ids: str) -> list[str]:
        return [k for i in ids for k in (keys.task(i), keys.dependents(i))]

    assert s.enqueue(keys=base + parents("ok", "bad"), args=["c", "back", "1", 2, "ok", "bad",
                                                            "function", "f"]) == -2  # fmt: skip
    assert s.enqueue(keys=base + parents("nope"), args=["c", "back", "1", 1, "nope",
                                                       "function", "f"]) == -3  # fmt: skip
    assert not r.exists(keys.task("c"))
    assert s.enqueue(keys=base + parents("ok", "busy"), args=["c", "back", "1", 2, "ok", "busy",
                                                             "function", "f"]) == 1  # fmt: skip
    assert r.hmget(keys.task("c"), "state", "waiting-for") == [b"waiting", b"1"]
    assert r.smembers(keys.dependents("busy")) == {b"c"} and r.llen(keys.pending) == 0


def test_start_takes_ownership_and_returns_the_hash(env) -> None:
    r, s, keys = env
    r.hset(keys.task("a"), mapping={"function": "echo", "state": "pending", "args": "{}"})
    r.lpush(keys.pending, "a")
    reply = start(s, keys, claim(r, keys), "a")
    assert reply[0] == b"ok" and reply[1] == 1
    fields = dict(zip(reply[2][::2], reply[2][1::2], strict=True))
    assert fields[b"state"] == b"executing" and fields[b"worker"] == b"w1"
    assert fields[b"executing-created"] == NOW.encode()
    assert fields[b"pending-created"] == NOW.encode()  # filled in: the hash had none


@pytest.mark.parametrize(
    ("setup", "status"),
    [
        (lambda r, k: None, b"missing"),
        (lambda r, k: r.set(k.task("a"), "x"), b"wrong-type"),
        (
            lambda r, k: r.hset(k.task("a"), mapping={"function": "f", "state": "finished"}),
            b"duplicate",
        ),
        (
            lambda r, k: r.hset(k.task("a"), mapping={"function": "f", "state": "executing"}),
            b"duplicate",
        ),
        (
            lambda r, k: r.hset(k.task("a"), mapping={"function": "f", "state": "odd"}),
            b"invalid-state",
        ),
        (
            lambda r, k: r.hset(k.task("a"), mapping={"function": "f", "state": "x" * 40}),
            b"invalid-state",
        ),
        (
            lambda r, k: r.hset(k.task("a"), mapping={"function": "f", "args": "x" * 2000}),
            b"too-large",
        ),
        (lambda r, k: r.hset(k.task("a"), mapping={f"f{i}": "v" for i in range(20)}), b"too-large"),
    ],
)
def test_start_statuses(env, setup, status: bytes) -> None:
    r, s, keys = env
    setup(r, keys)
    r.lpush(keys.pending, "a")
    reply = start(s, keys, claim(r, keys), "a")
    assert reply[0] == status
    if status == b"duplicate":
        assert r.llen(keys.executing) == 0
        assert r.hget(keys.task("a"), "worker") is None  # hash untouched


def test_start_of_an_entry_no_longer_executing_is_lost(env) -> None:
    r, s, keys = env
    r.hset(keys.task("a"), mapping={"function": "echo"})
    assert start(s, keys, b"a", "a") == [b"lost"]
    assert r.hget(keys.task("a"), "state") is None


def finish(s: Scripts, keys: Keys, entry: bytes, worker: str, claims: int) -> int:
    key = keys.task("a")
    return s.finish(keys=[key, keys.executing, keys.failed, keys.succeeded, keys.dependents("a"),
                          keys.releasing],
                    args=[entry, worker, claims, keys.results, key, "a", 5000, "succeeded", 0, 0,
                          "state", "finished", "result-value", "1", "result", "successful"],
                    )  # fmt: skip


def test_finish_is_fenced_by_worker_and_claims(env) -> None:
    r, s, keys = env
    r.hset(keys.task("a"), mapping={"function": "echo", "state": "pending"})
    r.lpush(keys.pending, "a")
    entry = claim(r, keys)
    start(s, keys, entry, "a")
    assert finish(s, keys, entry, "w2", 1) == 0
    assert finish(s, keys, entry, "w1", 2) == 0
    assert r.hget(keys.task("a"), "result") is None
    pubsub = r.pubsub()
    pubsub.subscribe(keys.results)
    assert pubsub.get_message(timeout=2)["type"] == "subscribe"
    assert finish(s, keys, entry, "w1", 1) == 1
    assert r.hget(keys.task("a"), "result") == b"successful"
    assert r.llen(keys.executing) == 0 and r.zcard(keys.failed) == 0
    assert r.zrange(keys.succeeded, 0, -1, withscores=True) == [(b"a", 5000.0)]
    assert pubsub.get_message(timeout=2)["data"] == keys.task("a").encode()
    assert finish(s, keys, entry, "w1", 1) == 0  # a second finish changes nothing
    pubsub.close()


def recover(s: Scripts, keys: Keys, entry: bytes, owner: str, max_claims: int = 3) -> bytes:
    key_list = [
        keys.task("a"),
        keys.executing,
        keys.pending,
        keys.failed,
        keys.dependents("a"),
        keys.releasing,
    ]
    if owner:
        key_list.append(keys.worker(owner))
    return bytes(s.recover(keys=key_list, args=[entry, owner, max_claims, NOW, keys.results,
                                                keys.task("a"), "a", 1000]))  # fmt: skip


def test_recover_respects_a_live_owner_then_requeues(env) -> None:
    r, s, keys = env
    r.hset(keys.task("a"), mapping={"function": "echo", "state": "pending"})
    r.lpush(keys.pending, "a")
    entry = claim(r, keys)
    start(s, keys, entry, "a")
    r.set(keys.worker("w1"), "alive")
    assert recover(s, keys, entry, "w1") == b"alive"
    assert recover(s, keys, entry, "") == b"owned"
    assert recover(s, keys, entry, "w9") == b"changed"
    r.delete(keys.worker("w1"))
    assert recover(s, keys, entry, "w1") == b"requeued"
    assert r.lrange(keys.pending, 0, -1) == [b"a"] and r.llen(keys.executing) == 0
    assert r.hget(keys.task("a"), "state") == b"pending"
    assert r.hget(keys.task("a"), "worker") is None
    assert finish(s, keys, entry, "w1", 1) == 0  # the revived worker is fenced off
    assert recover(s, keys, entry, "w1") == b"gone"


def test_recover_fails_a_task_after_max_claims(env) -> None:
    r, s, keys = env
    r.hset(keys.task("a"), mapping={"function": "echo", "state": "pending", "losses": "1"})
    r.lpush(keys.pending, "a")
    entry = claim(r, keys)
    start(s, keys, entry, "a")
    assert recover(s, keys, entry, "w1", max_claims=3) == b"requeued"
    assert r.hget(keys.task("a"), "losses") == b"2"
    entry = claim(r, keys)
    start(s, keys, entry, "a")
    assert recover(s, keys, entry, "w1", max_claims=3) == b"failed"
    fields = r.hgetall(keys.task("a"))
    assert fields[b"result"] == b"failed" and fields[b"error-code"] == b"worker-lost"
    assert r.llen(keys.executing) == 0 and r.llen(keys.pending) == 0
    assert r.zrange(keys.failed, 0, -1, withscores=True) == [(b"a", 1000.0)]


def test_a_release_is_not_a_loss(env) -> None:
    r, s, keys = env
    r.hset(keys.task("a"), mapping={"function": "echo", "state": "pending", "losses": "2"})
    r.lpush(keys.pending, "a")
    entry = claim(r, keys)
    start(s, keys, entry, "a")
    assert recover(s, keys, entry, "w1", max_claims=0) == b"requeued"
    assert r.hget(keys.task("a"), "losses") == b"2"


def test_recover_an_ownerless_entry(env) -> None:
    r, s, keys = env
    r.hset(keys.task("a"), mapping={"function": "echo", "state": "pending"})
    r.lpush(keys.pending, "a")
    entry = claim(r, keys)  # the claimer "died" before start.lua
    assert recover(s, keys, entry, "") == b"requeued"
    assert r.lrange(keys.pending, 0, -1) == [b"a"]


def test_reject_moves_the_entry(env) -> None:
    r, s, keys = env
    r.lpush(keys.executing, "bad entry")
    assert s.reject(keys=[keys.executing, keys.rejected], args=["bad entry", "{}", 2]) == 1
    assert s.reject(keys=[keys.executing, keys.rejected], args=["bad entry", "{}", 2]) == 0
    assert r.llen(keys.executing) == 0 and r.lrange(keys.rejected, 0, -1) == [b"{}"]
