"""Task leases and heartbeats no task can stall (SPEC.md 9.2), and one clock (SPEC.md 9.8)."""

from __future__ import annotations

import time

import pytest
from support import WorkerThread, wait_until

from dothis import Queue, Registry, Worker, WorkerOptions
from dothis.store.clock import measure
from dothis.wire import clock

pytestmark = pytest.mark.integration
FAST = {"lease_ms": 1000, "heartbeat_ms": 250, "reap_ms": 250, "block_seconds": 0.5}


def worker(queue: str, url: str, registry: Registry, worker_id: str, **options) -> WorkerThread:
    return WorkerThread(Worker(queue, url, registry=registry, worker_id=worker_id,
                               options=WorkerOptions(**{**FAST, **options})))  # fmt: skip


def test_a_live_owners_task_whose_lease_ran_out_is_recovered(url, queue_name, r) -> None:
    """A task stuck under a live worker that no longer renews it (it lost its start reply, gave
    up recording) goes back to pending and runs; a version-1 owner's task is left alone."""
    registry = Registry()
    registry.add(lambda text: text, name="echo")
    for owner, leases in (("modern", "task"), ("classic", None)):
        fields = {"id": owner, "heartbeat": "x", **({"leases": leases} if leases else {})}
        r.hset(f"{queue_name}:worker:{owner}", mapping=fields)
        r.hset(
            f"{queue_name}:task:{owner}-task",
            mapping={
                "function": "echo",
                "args": '{"text": "ran"}',
                "state": "executing",
                "worker": owner,
                "claims": "1",
                "lease-expires": str(int(time.time() * 1000) - 5000),
            },
        )
        r.lpush(f"{queue_name}:executing", f"{owner}-task")
    rescuer = worker(queue_name, url, registry, "rescuer")
    try:
        wait_until(lambda: r.hget(f"{queue_name}:task:modern-task", "result"), timeout=10)
        time.sleep(1.5)  # several reaper passes: the classic owner's task must stay put
        assert r.hget(f"{queue_name}:task:classic-task", "state") == b"executing"
    finally:
        rescuer.stop()
    done = r.hgetall(f"{queue_name}:task:modern-task")
    assert done[b"result-value"] == b'"ran"' and done[b"worker"] == b"rescuer"
    assert done[b"losses"] == b"1" and b"lease-expires" not in done


def test_a_blocking_async_task_does_not_stall_the_leases(url, queue_name, r) -> None:
    """An async def that blocks the event loop for 3 leases runs once and succeeds: heartbeats
    beat from their own thread (before, the task ran again elsewhere and ended worker-lost)."""
    registry = Registry()

    async def blocker() -> str:
        time.sleep(3)  # blocks the worker's event loop
        return "done"

    registry.add(blocker, name="blocker")
    first = worker(queue_name, url, registry, "first")
    with Queue(queue_name, url) as queue:
        task = queue.enqueue("blocker")
        wait_until(lambda: task.state == "executing", timeout=10)
        second = worker(queue_name, url, registry, "second")
        try:
            assert task.wait(timeout=20) == "done"
        finally:
            second.stop()
            first.stop()
        assert r.hget(task.key, "claims") == b"1" and r.hget(task.key, "worker") == b"first"


def test_a_task_taken_away_stops_its_try(url, queue_name, r) -> None:
    """When the heartbeat's renew finds a held task no longer this worker's, its try stops."""
    registry = Registry()
    registry.add(lambda: time.sleep(30), name="long")
    serving = worker(queue_name, url, registry, "holder", pool="thread")
    try:
        with Queue(queue_name, url) as queue:
            task = queue.enqueue("long")
            wait_until(lambda: task.state == "executing", timeout=10)
            r.hset(f"{queue_name}:worker:someone-else", "id", "someone-else")  # alive
            r.hset(task.key, mapping={"worker": "someone-else", "claims": "9"})  # taken over
            wait_until(lambda: serving.worker.tries.running == 0, timeout=5)
            assert r.hget(task.key, "worker") == b"someone-else"  # the stopped try was fenced
    finally:
        serving.stop()


def test_one_clock_corrects_a_skewed_machine(url, queue_name, r, monkeypatch) -> None:
    """A producer whose clock is 10 minutes fast writes due times in Redis's time."""
    skew_ns = 600 * 1_000_000_000
    real = time.time_ns
    monkeypatch.setattr(time, "time_ns", lambda: real() + skew_ns)
    try:
        with Queue(queue_name, url) as queue:
            task = queue.enqueue("echo", text="later", delay=120)
            redis_seconds, _ = r.time()
            due = r.zscore(queue.keys.scheduled, task.id)
            assert due is not None and abs(due / 1000 - (redis_seconds + 120)) < 5
            assert abs(clock.offset_ms() + 600_000) < 5_000
    finally:
        monkeypatch.setattr(time, "time_ns", real)
        with Queue(queue_name, url) as queue:
            measure(queue.store)  # back to this machine's true offset for the other tests
    assert abs(clock.offset_ms()) < 1_000


def test_a_task_let_go_while_its_renewal_was_out_is_not_lost(url: str, queue_name: str) -> None:
    """A heartbeat renews the tasks held when it began; one that ended meanwhile is refused
    renewal (it left executing), which must not read as 'taken away' (a warning, and a cancel
    that could hit the task's next try)."""
    import asyncio

    from dothis.store.ops import Ops
    from dothis.wire.protocol import Keys
    from dothis.wire.records import Claim
    from dothis.worker.heartbeat import Heartbeat

    heartbeat = Heartbeat(url, [], "w1", {}, lease_ms=1000, heartbeat_ms=100)
    loop = asyncio.new_event_loop()
    lost: list[Claim] = []
    heartbeat._loop, heartbeat._on_lost = loop, lambda ops, claim: lost.append(claim)
    ops = Ops(Keys(queue_name))
    ended, taken = Claim(b"t1", "t1", "w1", 1), Claim(b"t2", "t2", "w1", 1)
    finished = Claim(b"t3", "t3", "w1", 1)  # finish.lua ran; its reply not read yet
    client = heartbeat.store.client
    client.hset(ops.keys.task("t3"), mapping={"state": "finished", "worker": "w1", "claims": "1"})
    for claim in (ended, taken, finished):
        heartbeat.hold(ops, claim)
    renew = heartbeat.store.run_many

    def run_many(requests):  # type: ignore[no-untyped-def]
        heartbeat.release(ops, "t1")  # t1 ended while the renewals were on their way
        return renew(requests)

    heartbeat.store.run_many = run_many  # type: ignore[method-assign]
    try:
        heartbeat.beat()  # every renewal is refused: no hash, or not executing
        loop.run_until_complete(asyncio.sleep(0.01))
    finally:
        loop.close()
        heartbeat.store.client.close()
    assert lost == [taken]


def test_a_worker_key_remade_bare_by_a_late_beat_is_registered_again(url, queue_name, r) -> None:
    # Redis paused past the socket timeout: a beat whose reply was lost is applied once Redis
    # runs again, after the key expired, and re-makes it with its heartbeat alone. The next beat
    # must tell (the key has no id), so that the worker registers again: a bare key passes for a
    # live worker that keeps no task leases, and its tasks whose leases ran out (a take whose
    # reply was lost) would never be recovered.
    from dothis.store import leases
    from dothis.store.connection import connect
    from dothis.wire.protocol import Keys
    from dothis.wire.records import worker_record

    client = connect(url)
    key = Keys(queue_name).worker("w-bare")
    fields = worker_record("w-bare", [queue_name], [], 1)
    try:
        leases.register(client, key, fields, 5000)
        assert leases.heartbeat(client, key, 5000)
        r.delete(key)  # expired during the pause
        r.hset(key, "heartbeat", clock.now_iso())  # the late beat
        assert not leases.heartbeat(client, key, 5000)  # the caller registers again
        leases.register(client, key, fields, 5000)
        assert leases.heartbeat(client, key, 5000)
        assert r.hget(key, "id") == b"w-bare"
    finally:
        client.close()
