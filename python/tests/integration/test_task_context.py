"""Inside a task: its context (dothis.current_task()), progress reports, middleware around each
call and startup/shutdown hooks, in every pool a worker runs functions in."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from support import wait_until

import dothis
from dothis import Queue, Registry, Retry, TaskContext, TaskFailed
from dothis.store.ops import Ops
from dothis.wire.protocol import Keys

POOLS = ["process", "thread", "inline"]


def context_registry(events: Path) -> Registry:
    """Functions that report what they see, middleware that opens a 'session' per call, and
    hooks that note which process started and stopped."""
    registry = Registry()
    state: dict[str, Any] = {}

    @registry.register
    def whoami() -> dict[str, Any]:
        task = dothis.current_task()
        assert task is not None
        return {"id": task.id, "queue": task.queue, "function": task.function,
                "try": task.try_number, "attempts": task.attempts, "worker": task.worker_id,
                "session": state.get("session"), "started": state.get("started"),
                "pid": os.getpid()}  # fmt: skip

    @registry.register
    async def whoami_async() -> dict[str, Any]:
        return whoami()

    @registry.register
    def retried_once() -> int:
        task = dothis.current_task()
        assert task is not None
        if task.try_number == 1:
            raise Retry("once more", delay=0)
        return task.try_number

    @registry.register
    def reports(until: str) -> str:
        assert dothis.progress(0.25, "a quarter")
        while not Path(until).exists():  # the test lets it end
            dothis.progress(0.5, "half")
            Path(until).with_suffix(".seen").touch()
            wait_until(lambda: Path(until).exists(), timeout=20, interval=0.05)
        return "done"

    @registry.add_middleware
    @contextlib.contextmanager
    def session(task: TaskContext) -> Iterator[None]:
        if task.function == "refused":
            raise RuntimeError("no database today")
        state["session"] = f"session of {task.id}"
        try:
            yield
        finally:
            state["session"] = None

    @registry.register
    def refused() -> None:
        raise AssertionError("the middleware refuses to run this")

    @registry.on_startup
    def started() -> None:
        state["started"] = os.getpid()
        with events.open("a") as out:
            out.write(f"startup {os.getpid()}\n")

    @registry.on_shutdown
    async def stopped() -> None:
        with events.open("a") as out:
            out.write(f"shutdown {os.getpid()}\n")

    return registry


@pytest.mark.parametrize("pool", POOLS)
def test_a_task_knows_itself_in_every_pool(pool, queue, start_worker, tmp_path) -> None:  # type: ignore[no-untyped-def]
    events = tmp_path / "events"
    worker = start_worker(context_registry(events), pool=pool, concurrency=2)
    seen = queue.enqueue("whoami", attempts=3).wait(timeout=20)
    task_id = seen.pop("id")
    pid = seen.pop("pid")
    assert seen == {"queue": queue.name, "function": "whoami", "try": 1, "attempts": 3,
                    "worker": worker.worker.id, "session": f"session of {task_id}",
                    "started": pid}  # fmt: skip
    assert (pid != os.getpid()) == (pool == "process")  # a child ran it, with its own startup
    assert queue.enqueue("whoami_async").wait(timeout=20)["pid"] == os.getpid()
    assert queue.enqueue("retried_once", attempts=2).wait(timeout=20) == 2
    assert dothis.current_task() is None  # outside a task
    with pytest.raises(TaskFailed, match="no database today"):
        queue.enqueue("refused").wait(timeout=20)
    worker.stop()
    lines = events.read_text().split()
    assert lines.count("startup") == (3 if pool == "process" else 1)  # worker + 2 children
    assert lines.count("shutdown") == lines.count("startup")


def test_progress_is_written_announced_and_kept(queue, r, start_worker, tmp_path) -> None:  # type: ignore[no-untyped-def]
    until = tmp_path / "until"
    start_worker(context_registry(tmp_path / "events"))
    task = queue.enqueue("reports", until=str(until))
    report = task.wait_progress(timeout=20)
    assert report["fraction"] in (0.25, 0.5) and report["updated"].endswith("Z")
    wait_until(lambda: until.with_suffix(".seen").exists(), timeout=20)
    assert task.progress["message"] == "half"
    until.touch()
    assert task.wait(timeout=20) == "done"
    assert task.progress == {"fraction": 0.5, "message": "half",
                             "updated": task.progress["updated"]}  # fmt: skip
    with pytest.raises(dothis.WaitTimeout, match="no progress"):
        task.wait_progress(timeout=0.3)


def test_a_try_that_lost_its_task_writes_no_progress(queue, r) -> None:  # type: ignore[no-untyped-def]
    ops, client = Ops(Keys(queue.name)), queue.redis
    key = queue.keys.task("p1")
    r.hset(key, mapping={"state": "executing", "claims": "2", "worker": "w1", "function": "f"})
    calls = [ops.progress("p1", 1, "w1", '{"fraction": 1}'),  # an earlier claim
             ops.progress("p1", 2, "w2", '{"fraction": 1}'),  # another worker
             ops.progress("nope", 2, "w1", '{"fraction": 1}')]  # no hash  # fmt: skip
    assert [queue.store.run(call) for call in calls] == [False, False, False]
    assert r.hget(key, "progress") is None
    assert queue.store.run(ops.progress("p1", 2, "w1", '{"fraction": 1}')) is True
    assert r.hget(key, "progress") == b'{"fraction": 1}'
    assert isinstance(client, redis.Redis)


def test_progress_outside_a_task_and_out_of_range() -> None:
    assert dothis.progress(0.5) is False
    task = TaskContext("t", "q", "f", 1, 1, "w", 1)
    with pytest.raises(ValueError, match="from 0 to 1"):
        task.progress(1.5)


def test_a_failing_startup_hook_stops_the_worker_with_its_error(url, queue_name) -> None:  # type: ignore[no-untyped-def]
    registry = Registry()

    @registry.on_startup
    def broken() -> None:
        raise RuntimeError("cannot reach the database")

    with Queue(queue_name, url):
        worker = dothis.Worker(queue_name, url, registry=registry,
                               options=dothis.WorkerOptions(pool="inline"))  # fmt: skip
        with pytest.raises(RuntimeError, match="cannot reach the database"):
            worker.run()
