"""The process pool gives a child short tries in batches; a timeout, a crash or a cancel in a batch
costs only its own try: the tries behind it, not begun, run on the next child."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from dothis.engine.registry import Registry
from dothis.engine.tries import Crashed, Returned
from dothis.worker.pool import ProcessPool
from dothis.worker.pool.batches import BATCH


def same(value: Any) -> Any:
    return value


def pid() -> int:
    return os.getpid()


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def touch(path: str) -> str:
    Path(path).write_text("ran")
    return path


def die() -> None:
    os._exit(3)


def default_sigterm() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def sigterm_handler() -> str:
    handler = signal.getsignal(signal.SIGTERM)
    return getattr(handler, "__name__", str(handler))


REGISTRY = Registry()
for function in (same, pid, nap, touch, die, default_sigterm, sigterm_handler):
    REGISTRY.add(function)


async def _pool_with(body: Any, size: int = 1) -> Any:
    pool = ProcessPool(size, REGISTRY)
    pool.start()
    try:
        for _ in range(5):  # a few short tries: the pool now counts them as short
            await pool.run("same", {"value": 0}, None)
        return await body(pool)
    finally:
        await pool.close()


def test_short_tries_go_to_the_child_in_batches() -> None:
    sent: list[int] = []

    async def body(pool: ProcessPool) -> list[Any]:
        child = pool._lanes[0].child
        send = child.send

        def counting(kind: str, items: list[Any]) -> None:
            sent.append(len(items))
            send(kind, items)

        child.send = counting  # type: ignore[method-assign]
        return await asyncio.gather(*(pool.run("same", {"value": n}, None) for n in range(100)))

    results = asyncio.run(_pool_with(body))
    assert results == [Returned(str(n)) for n in range(100)]
    assert max(sent) > 1 and max(sent) <= BATCH and sum(sent) == 100, sent


def test_a_timeout_in_a_batch_costs_only_its_own_try() -> None:
    async def body(pool: ProcessPool) -> list[Any]:
        before = await pool.run("pid", {}, None)
        runs = [pool.run("same", {"value": "a"}, None), pool.run("nap", {"seconds": 5}, 0.3),
                pool.run("same", {"value": "b"}, None), pool.run("pid", {}, None)]  # fmt: skip
        results = await asyncio.gather(*runs, return_exceptions=True)
        return [before, *results]

    before, first, slow, after, later_pid = asyncio.run(_pool_with(body))
    assert first == Returned('"a"') and after == Returned('"b"')
    assert isinstance(slow, TimeoutError)
    assert isinstance(later_pid, Returned) and later_pid != before  # a new child ran the rest


def test_a_crash_in_a_batch_costs_only_its_own_try() -> None:
    async def body(pool: ProcessPool) -> list[Any]:
        runs = [pool.run("same", {"value": 1}, None), pool.run("die", {}, None),
                pool.run("same", {"value": 2}, None)]  # fmt: skip
        return await asyncio.gather(*runs)

    first, crashed, after = asyncio.run(_pool_with(body))
    assert (first, after) == (Returned("1"), Returned("2"))
    assert crashed == Crashed("the process running die was exited with status 3")


def test_a_try_cancelled_before_it_began_does_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    async def body(pool: ProcessPool) -> list[Any]:
        slow = asyncio.ensure_future(pool.run("nap", {"seconds": 0.5}, None))
        skipped = asyncio.ensure_future(pool.run("touch", {"path": str(marker)}, None))
        after = asyncio.ensure_future(pool.run("same", {"value": "after"}, None))
        deadline = time.monotonic() + 5
        while len(pool._lanes[0].sent) < 3:  # all three sent to the child, the nap running
            assert time.monotonic() < deadline
            await asyncio.sleep(0.005)
        skipped.cancel()
        return await asyncio.gather(slow, after)

    assert asyncio.run(_pool_with(body)) == [Returned("0.5"), Returned('"after"')]
    assert not marker.exists()


@pytest.mark.parametrize("size", [1, 2])
def test_no_more_tries_run_at_once_than_the_slots(size: int) -> None:
    async def body(pool: ProcessPool) -> float:
        started = time.monotonic()
        await asyncio.gather(*(pool.run("nap", {"seconds": 0.2}, None) for _ in range(4)))
        return time.monotonic() - started

    took = asyncio.run(_pool_with(body, size=size))
    assert took >= 0.8 / size - 0.05  # four naps of 0.2 s, at most ``size`` at once


def test_closing_the_pool_answers_every_try_it_holds() -> None:
    async def body() -> list[Any]:
        pool = ProcessPool(1, REGISTRY)
        pool.start()
        for _ in range(5):
            await pool.run("same", {"value": 0}, None)
        runs = [asyncio.ensure_future(pool.run("nap", {"seconds": 5}, None)) for _ in range(3)]
        deadline = time.monotonic() + 5
        while len(pool._lanes[0].sent) < 3:  # all three with the child, the first running
            assert time.monotonic() < deadline
            await asyncio.sleep(0.005)
        await pool.close()
        return await asyncio.wait_for(asyncio.gather(*runs), timeout=5)

    results = asyncio.run(body())
    assert all(isinstance(result, Crashed) and "the pool stopped" in result.detail
               for result in results), results  # fmt: skip


def test_a_message_larger_than_the_socket_buffer_reaches_the_child_whole() -> None:
    # A message the socket cannot take at once is written as it drains; a frame sent meanwhile
    # (here a withdrawal) queues behind it, so no frame is cut into by another.
    big = "x" * (4 << 20)

    async def body(pool: ProcessPool) -> list[Any]:
        first = asyncio.ensure_future(pool.run("same", {"value": big}, None, 8 << 20))
        withdrawn = asyncio.ensure_future(pool.run("same", {"value": "no"}, None))
        while not pool._lanes[0].sent:  # both sent in one message
            await asyncio.sleep(0)
        assert pool._lanes[0].child._backlog, "the message fitted the socket: nothing tested"
        withdrawn.cancel()
        after = await pool.run("same", {"value": "after"}, None)
        return [await first, withdrawn.cancelled(), after]

    assert asyncio.run(_pool_with(body)) == [Returned(f'"{big}"'), True, Returned('"after"')]


def test_a_try_that_changes_the_stop_signals_handler_does_not_change_it_for_the_next() -> None:
    async def body(pool: ProcessPool) -> list[Any]:
        before = await pool.run("sigterm_handler", {}, None)
        await pool.run("default_sigterm", {}, None)
        return [before, await pool.run("sigterm_handler", {}, None)]

    before, after = asyncio.run(_pool_with(body))
    assert before == after == Returned('"_nothing"')
