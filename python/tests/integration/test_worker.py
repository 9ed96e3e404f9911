"""A Worker against a real redis-server: execution, outcomes, the results channel, bad input."""

from __future__ import annotations

import json
import threading

import pytest
import redis
import taskfns
from support import wait_until

from dothis import Queue, TaskFailed, WaitTimeout
from integration.test_producer import as_text, validator

pytestmark = pytest.mark.integration


@pytest.fixture
def queue(url: str, queue_name: str):
    with Queue(queue_name, url) as q:
        yield q


def finished(r: redis.Redis, key: str) -> dict[str, str] | None:
    fields = as_text(r.hgetall(key)) if r.hget(key, "result") else None
    return fields


def test_echo_runs_and_the_hash_is_complete(queue, r, start_worker) -> None:
    start_worker()
    pubsub = r.pubsub()
    pubsub.subscribe(queue.keys.results)
    assert pubsub.get_message(timeout=2)["type"] == "subscribe"
    task = queue.enqueue("echo", text="ooh yeeah")
    message = pubsub.get_message(timeout=10)
    while message is not None and message["type"] != "message":
        message = pubsub.get_message(timeout=10)
    assert message is not None and message["data"] == task.key.encode()
    fields = as_text(r.hgetall(task.key))
    assert list(fields) == [
        "function",
        "state",
        "args",
        "pending-created",
        "executing-created",
        "worker",
        "claims",
        "result-value",
        "result",
        "finished-created",
    ]
    assert fields["state"] == "finished" and fields["result"] == "successful"
    assert fields["result-value"] == '"ooh yeeah"' and fields["claims"] == "1"
    assert r.llen(queue.keys.executing) == 0
    validator("task.schema.json").validate(fields)
    pubsub.close()


@pytest.mark.parametrize(
    ("value", "encoded"), [(0, "0"), (False, "false"), ("", '""'), (None, "null"), ([], "[]")]
)
def test_falsy_values_are_kept(queue, r, start_worker, value, encoded) -> None:
    start_worker()
    task = queue.enqueue(taskfns.identity, value=value)
    assert task.wait(timeout=10) == value
    assert r.hmget(task.key, "result", "result-value") == [b"successful", encoded.encode()]


def test_failure_fields_and_wait_raises(queue, r, start_worker) -> None:
    start_worker()
    task = queue.enqueue("fail", message="boom")
    with pytest.raises(TaskFailed) as caught:
        task.wait(timeout=10)
    assert caught.value.code == "exception" and caught.value.reason == "boom"
    assert "RuntimeError: boom" in caught.value.exception
    fields = as_text(r.hgetall(task.key))
    assert fields["result"] == "failed" and "result-value" not in fields
    validator("task.schema.json").validate(fields)
    assert task.error is not None and task.outcome == "failed"


def test_async_function(queue, start_worker) -> None:
    start_worker()
    assert queue.enqueue(taskfns.async_add, a=2, b=3).wait(timeout=10) == 5


def test_unserializable_result(queue, start_worker) -> None:
    start_worker()
    with pytest.raises(TaskFailed) as caught:
        queue.enqueue(taskfns.unserializable).wait(timeout=10)
    assert caught.value.code == "unserializable-result"


def test_concurrency_runs_tasks_at_once_in_threads(queue, start_worker) -> None:
    start_worker(concurrency=4, pool="thread")
    tasks = queue.enqueue_many([(taskfns.probe, {"seconds": 0.3}) for _ in range(8)])
    assert max(task.wait(timeout=20) for task in tasks) == 4


def test_concurrency_runs_tasks_at_once_in_child_processes(queue, start_worker) -> None:
    import os

    start_worker(concurrency=3)
    tasks = queue.enqueue_many([(taskfns.whoami, {"seconds": 0.5}) for _ in range(3)])
    pids = {task.wait(timeout=20) for task in tasks}
    assert len(pids) == 3 and os.getpid() not in pids


def test_wait_timeout(queue) -> None:
    task = queue.enqueue("echo", text="nobody runs me")
    with pytest.raises(WaitTimeout, match=task.id):
        task.wait(timeout=0.2)


def test_many_waits_share_one_subscription(queue, r, start_worker) -> None:
    import threading

    tasks = queue.enqueue_many([("add", {"a": i, "b": i}) for i in range(200)])
    values: dict[int, object] = {}

    def waiter(index: int) -> None:
        values[index] = tasks[index].wait(timeout=30)

    threads = [threading.Thread(target=waiter, args=(i,)) for i in range(200)]
    for thread in threads:
        thread.start()
    wait_until(lambda: r.pubsub_numsub(queue.keys.results)[0][1] == 1)
    start_worker(concurrency=4)
    for thread in threads:
        thread.join(30)
    assert values == {i: 2 * i for i in range(200)}
    assert r.pubsub_numsub(queue.keys.results)[0][1] == 1


def test_worker_key_heartbeat_and_clean_exit(queue, r, start_worker) -> None:
    thread = start_worker(lease_ms=1000, heartbeat_ms=200)
    key = queue.keys.worker(thread.worker.id)
    wait_until(lambda: r.exists(key))
    fields = as_text(r.hgetall(key))
    validator("worker.schema.json").validate(fields)
    assert {"add", "async_add", "echo", "fail", "sleep"} <= set(json.loads(fields["functions"]))
    assert 0 < r.pttl(key) <= 1000
    first = fields["heartbeat"]
    wait_until(lambda: r.hget(key, "heartbeat").decode() != first, timeout=3)
    thread.stop()
    assert not r.exists(key)


def test_worker_recreates_an_expired_key(queue, r, start_worker) -> None:
    thread = start_worker(lease_ms=1000, heartbeat_ms=200)
    key = queue.keys.worker(thread.worker.id)
    wait_until(lambda: r.exists(key))
    r.delete(key)
    wait_until(lambda: r.hget(key, "functions"), timeout=3)


def test_a_lost_start_reply_is_resolved_by_reading_the_hash(queue, r, url) -> None:
    """SPEC.md 5.3: after a lost reply the worker reads the hash instead of calling start again."""
    from dothis.engine.decide import RetryPolicy
    from dothis.engine.flow import drive_sync
    from dothis.engine.lifecycle import Context, _after_lost_start
    from dothis.store.execute import SyncStore
    from dothis.store.ops import Limits
    from dothis.store.replies import Refused, Skipped, Started

    key = queue.keys.task("t1")
    r.hset(key, mapping={"function": "echo", "state": "executing", "worker": "me", "claims": "4",
                         "args": '{"text": "x"}'})  # fmt: skip
    ctx = Context(queue.ops, "me", None, Limits(1024 * 1024, 256), RetryPolicy(), 60, 60)

    def ask():
        return drive_sync(_after_lost_start("t1", ctx), SyncStore(r), lambda request: None)

    reply = ask()
    assert isinstance(reply, Started) and reply.claims == 4
    assert reply.fields[b"function"] == b"echo"
    r.hset(key, "worker", "someone-else")
    assert isinstance(ask(), Skipped)  # not ours: the reaper's business
    r.hset(key, mapping={"worker": "me", "args": "x" * 2_000_000})
    assert isinstance(ask(), Refused)


def test_the_reaper_reads_every_page_of_executing(queue, r, url) -> None:
    import asyncio

    from dothis.engine.decide import RetryPolicy
    from dothis.engine.flow import drive_async
    from dothis.engine.lifecycle import Context
    from dothis.store.connection import connect_async
    from dothis.store.execute import AsyncStore
    from dothis.store.ops import Limits
    from dothis.worker.lane import Lane
    from dothis.worker.reaper import PAGE, Reaper

    oldest = queue.keys.task("oldest")
    r.hset(oldest, mapping={"function": "echo", "state": "executing", "worker": "dead"})
    r.rpush(queue.keys.executing, "oldest")  # the far end: beyond the first page
    r.lpush(queue.keys.executing, *[f"live-{i}" for i in range(PAGE + 5)])
    r.hset(queue.keys.task("live-0"), mapping={"function": "echo", "state": "executing",
                                               "worker": "alive"})  # fmt: skip
    r.set(queue.keys.worker("alive"), "1")

    async def sweep() -> None:
        store = AsyncStore(connect_async(url))
        ctx = Context(queue.ops, "me", None, Limits(1024, 16), RetryPolicy(), 60, 60)
        lane = Lane(queue.keys, queue.ops, ctx)

        async def drive(flow):
            return await drive_async(flow, store, None, lambda step: None)

        try:
            await Reaper(store, [lane], drive, "me", 60_000, 1000, 3).sweep(lane)
        finally:
            await store.client.aclose()

    asyncio.run(sweep())
    assert r.lrange(queue.keys.pending, 0, -1) == [b"oldest"]


def test_inline_pool_with_prefetch(queue, r, start_worker) -> None:
    """pool inline runs plain functions on the event loop; prefetched tasks are claimed and
    owned in executing (crash-safe) and all finish."""
    start_worker(pool="inline", prefetch=50)
    tasks = queue.enqueue_many([("add", {"a": i, "b": 1}) for i in range(300)])
    assert [task.wait(timeout=20) for task in tasks] == [i + 1 for i in range(300)]
    assert r.llen(queue.keys.executing) == 0
    with pytest.raises(TaskFailed):
        queue.enqueue("fail", message="inline").wait(timeout=10)


def test_burst_drains_what_is_queued_now_then_returns(url, queue_name, r) -> None:
    """rq's --burst: due work runs (a chain of dependents included), later work stays queued."""
    from dothis import Worker, WorkerOptions

    with Queue(queue_name, url) as queue:
        tasks = [queue.enqueue("add", a=n, b=1) for n in range(5)]
        child = queue.enqueue("echo", depends_on=tasks[-1], text="after")
        later = queue.enqueue("echo", delay=3600, text="later")
        worker = Worker(queue_name, url, options=WorkerOptions(burst=True, concurrency=2))
        done = threading.Event()
        runner = threading.Thread(target=lambda: (worker.run(), done.set()), daemon=True)
        runner.start()
        assert done.wait(timeout=30), "a burst worker did not return once the queue was drained"
        assert [task.wait(timeout=1) for task in tasks] == [1, 2, 3, 4, 5]
        assert child.wait(timeout=1) == "after"
        assert r.hget(later.key, "state") == b"scheduled"
        assert worker.processed == 6
        assert r.zcard(queue.keys.workers) == 0  # it left
