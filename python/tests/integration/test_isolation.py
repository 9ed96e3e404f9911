"""What one try can do to the process that runs it, and to the tries after it: careless forks on
the pool's pipe, the standard descriptors, a group SIGTERM, threads that outlive their timeout,
values too large to record."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import subprocess
import threading
import time
from unittest import mock

import pytest
import taskfns
import taskfns_isolation as fns
from support import WorkerProcess, wait_until

from dothis import Queue, TaskFailed
from dothis.wire.protocol import DEFAULT_MAX_VALUE_BYTES

pytestmark = pytest.mark.integration


@pytest.fixture
def queue(url: str, queue_name: str):
    with Queue(queue_name, url) as q:
        yield q


def failure(task) -> TaskFailed:
    with pytest.raises(TaskFailed) as caught:
        task.wait(timeout=15)
    return caught.value


# -- 1. replies on the pool's pipe ---------------------------------------------------------------


def test_a_forked_process_that_returns_never_answers(queue, start_worker) -> None:
    """Both processes of a fork inside the task return: only the pool's child answers, and the
    tries after it get their own results."""
    start_worker(concurrency=1)
    forked = queue.enqueue(fns.fork_both_return, pause=0.3)
    after = [queue.enqueue(fns.same, value=n) for n in range(5)]
    assert forked.wait(timeout=15) == "child"
    assert [task.wait(timeout=15) for task in after] == list(range(5))


def test_a_forged_reply_is_refused_and_the_child_replaced(queue, start_worker) -> None:
    start_worker(concurrency=1)
    before = queue.enqueue(taskfns.whoami, seconds=0).wait(timeout=15)
    forged = queue.enqueue(fns.fork_forge_reply)
    after = [queue.enqueue(fns.same, value=n) for n in range(3)]
    error = failure(forged)
    assert error.code == "crashed", error
    assert "not one of the pool's" in error.reason and "replaced" in error.reason, error.reason
    assert [task.wait(timeout=15) for task in after] == list(range(3))
    assert queue.enqueue(taskfns.whoami, seconds=0).wait(timeout=15) != before


def test_a_reply_from_another_pid_is_refused(queue, start_worker) -> None:
    """A reply right in token, try and nonce, but sent by a process forked in the task."""
    start_worker(concurrency=1)
    forged = queue.enqueue(fns.fork_reply_from_grandchild)
    after = queue.enqueue(fns.same, value="mine")
    error = failure(forged)
    assert error.code == "crashed", error
    assert "from process" in error.reason and "replaced" in error.reason, error.reason
    assert after.wait(timeout=15) == "mine"


def test_a_child_that_dies_is_seen_while_a_forked_process_holds_its_socket(
    queue, start_worker
) -> None:
    """The end of the stream does not come while a process the task forked keeps the socket."""
    start_worker(concurrency=1)
    assert queue.enqueue(fns.fork_sleeper, seconds=30).wait(timeout=15) == "forked"
    error = failure(queue.enqueue(taskfns.die, status=3))
    assert error.code == "crashed" and "exited with status 3" in error.reason, error
    assert queue.enqueue(fns.same, value="next").wait(timeout=15) == "next"


def test_the_pool_refuses_a_reply_it_did_not_ask_for() -> None:
    """Unit level: the checks of a reply."""
    from dothis.engine.tries import Returned
    from dothis.worker.pool import ForeignReply, check_reply

    def reply(token="t", try_id=1, nonce="n", pid=42, message=("Returned", '"v"')) -> bytes:
        import json

        return json.dumps([token, try_id, nonce, pid, list(message)]).encode()

    expected = {"token": "t", "try_id": 1, "nonce": "n", "pid": 42}
    assert check_reply(reply(), **expected) == Returned('"v"')
    for bad in (reply(token="u"), reply(try_id=0), reply(nonce="m"), reply(pid=43),
                reply(message=("Nothing",)), b'["Returned", "\\"forged\\""]', b"\xff"):  # fmt: skip
        with pytest.raises(ForeignReply):
            check_reply(bad, **expected)


# -- 2. the standard descriptors -----------------------------------------------------------------


def test_standard_fds_are_restored_after_every_try(queue, start_worker) -> None:
    start_worker(concurrency=1)
    original = queue.enqueue(fns.std_fds).wait(timeout=15)
    assert None not in original
    assert queue.enqueue(fns.close_std_fds).wait(timeout=15) == "closed"
    for n in range(3):
        assert queue.enqueue(fns.write_std, text=f"after close {n}").wait(timeout=15) == (
            f"after close {n}"
        )
    assert queue.enqueue(fns.std_fds).wait(timeout=15) == original
    assert queue.enqueue(fns.redirect_std_fds).wait(timeout=15) == "redirected"
    assert queue.enqueue(fns.std_fds).wait(timeout=15) == original


# -- 3. a SIGTERM to the whole process group -----------------------------------------------------


class GroupWorker(WorkerProcess):
    """``dothis worker`` in a session (so a process group) of its own, as systemd runs it: a
    signal to its group never reaches the test runner."""

    def __init__(self, *args, **kwargs) -> None:
        in_session = functools.partial(subprocess.Popen, start_new_session=True)
        with mock.patch.object(subprocess, "Popen", in_session):
            super().__init__(*args, **kwargs)

    def signal_group(self, signum: int) -> None:
        os.killpg(self.process.pid, signum)


@pytest.mark.acceptance
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_process_group_lets_running_tasks_finish(
    url, queue_name, r, signum
) -> None:
    worker = GroupWorker(url, queue_name, "--concurrency", "2", "--worker-id", "grouped")
    try:
        assert os.getpgid(worker.process.pid) == worker.process.pid != os.getpgid(0)
        with Queue(queue_name, url) as queue:
            tasks = [queue.enqueue("sleep", seconds=2) for _ in range(2)]
            wait_until(lambda: all(r.hget(t.key, "state") == b"executing" for t in tasks),
                       timeout=15)  # fmt: skip
            worker.signal_group(signum)
            assert worker.wait(timeout=30) == 0, worker.output()
            assert [task.refresh().outcome for task in tasks] == ["successful"] * 2, worker.output()
    finally:
        worker.stop()


# -- 4. the thread pool after a timeout ----------------------------------------------------------


def test_a_timed_out_thread_does_not_hold_up_the_next_try(queue, start_worker, caplog) -> None:
    fns.released.clear()
    try:
        start_worker(concurrency=1, pool="thread")
        slow = queue.enqueue(fns.blocked, seconds=20, timeout=0.5)
        quick = queue.enqueue(fns.same, value="ran", timeout=2)
        assert failure(slow).code == "timeout"
        started = time.monotonic()
        assert quick.wait(timeout=15) == "ran"
        assert time.monotonic() - started < 1.5
        assert "a thread running blocked outlived its timeout; it keeps running" in caplog.text
    finally:
        fns.released.set()


def test_abandoned_threads_beyond_the_cap_are_logged_as_an_error(caplog) -> None:
    from dothis.engine.tries import Returned
    from dothis.worker.threads import ThreadPool

    fns.released.clear()
    threads = ThreadPool(1, max_abandoned=1)

    async def tries() -> object:
        for _ in range(2):
            with pytest.raises(TimeoutError):
                await threads.run("blocked", fns.blocked.__wrapped__, {"seconds": 20}, 0.05)
        return await threads.run("same", fns.same.__wrapped__, {"value": 1}, 5)

    try:
        with caplog.at_level(logging.WARNING, logger="dothis.pool"):
            assert asyncio.run(tries()) == Returned("1")
        assert threads.abandoned == 2
        errors = [rec.getMessage() for rec in caplog.records if rec.levelno == logging.ERROR]
        assert len(errors) == 1 and "2 threads" in errors[0], errors
    finally:
        fns.released.set()
        threads.shutdown(wait=True)
    wait_until(lambda: threads.abandoned == 0, timeout=5)


def test_threads_are_reused_and_idle_ones_end() -> None:
    from dothis.worker.threads import ThreadPool

    threads = ThreadPool(2, idle_seconds=0.3, name_prefix="dothis-reuse")

    def names() -> set[str]:
        return {t.name for t in threading.enumerate() if t.name.startswith("dothis-reuse")}

    def name() -> str:
        return threading.current_thread().name

    async def tries() -> list[object]:
        return [await threads.run("name", name, {}, 5) for _ in range(3)]

    results = asyncio.run(tries())
    assert len(set(results)) == 1 and names() == {"dothis-reuse-1"}, results
    wait_until(lambda: not names(), timeout=5)
    threads.shutdown(wait=True)


# -- 5. a value too large to record ------------------------------------------------------------


@pytest.mark.parametrize("pool", ["process", "thread", "inline"])
def test_a_value_longer_than_max_value_bytes_fails_too_large(queue, r, start_worker, pool) -> None:
    start_worker(pool=pool)
    task = queue.enqueue(fns.huge_text, size=DEFAULT_MAX_VALUE_BYTES)
    error = failure(task)
    assert error.code == "too-large", error
    assert f"{DEFAULT_MAX_VALUE_BYTES + 2} bytes" in error.reason, error.reason
    assert not r.hexists(task.key, "result-value")
    assert queue.enqueue(fns.same, value="next").wait(timeout=15) == "next"


def test_the_process_pool_checks_the_size_in_the_child() -> None:
    from dothis.engine.registry import Registry
    from dothis.engine.tries import Returned, TooLarge
    from dothis.worker.pool import ProcessPool

    registry = Registry()
    registry.add(fns.huge_text.__wrapped__, "huge_text")

    async def tries() -> list[object]:
        pool = ProcessPool(1, registry)
        pool.start()
        try:
            return [await pool.run("huge_text", {"size": size}, None, max_value_bytes=50)
                    for size in (48, 49, 1000)]  # fmt: skip
        finally:
            await pool.close()

    assert asyncio.run(tries()) == [Returned('"' + "x" * 48 + '"'), TooLarge(51, 50),
                                    TooLarge(1002, 50)]  # fmt: skip


def test_within_limit_counts_utf8_bytes() -> None:
    from dothis.engine.tries import Raised, Returned, TooLarge, within_limit

    assert within_limit(Returned('"é"'), 4) == Returned('"é"')  # 4 bytes
    assert within_limit(Returned('"éé"'), 5) == TooLarge(6, 5)
    assert within_limit(Raised("x" * 100), 5) == Raised("x" * 100)
