"""Running a try for the worker: where it runs (the event loop, a child process, a thread, or
inline), its timeout, a cancel that stops it, and the one concurrency limit of the worker.

Every try of every queue the worker serves takes a slot of one semaphore of ``concurrency``
slots; prefetched tasks wait for a slot, claimed and owned, but never run beyond the limit.

A try that returned a value whose JSON is longer than ``max_value_bytes`` ends ``TooLarge``
(SPEC.md 5.4) rather than in a finish that Redis would refuse.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Executor

from dothis.engine.checks import Invocation
from dothis.engine.flow import RunTry
from dothis.engine.tries import (
    Stopped,
    TimedOut,
    TryResult,
    run_call,
    run_coroutine,
    within_limit,
)
from dothis.store.ops import Ops
from dothis.wire.protocol import DEFAULT_MAX_VALUE_BYTES
from dothis.worker.pool import ProcessPool
from dothis.worker.slots import Slots
from dothis.worker.threads import ThreadPool

CancelToken = tuple[Ops, str]


class Stop:
    """Stops one try: ``set()`` cancels it while it runs, or keeps it from starting."""

    def __init__(self) -> None:
        self.requested = False
        self.running: asyncio.Future[TryResult] | None = None

    def set(self) -> None:
        self.requested = True
        if self.running is not None:
            self.running.cancel()


class Tries:
    """``pool``: the process pool, or None. ``executor``: the ``ThreadPool`` of ``pool="thread"``,
    or None; any other executor (a ThreadPoolExecutor) only says "threads" and a ThreadPool of
    ``concurrency`` threads is used in its place, since a thread that outlives its timeout must
    not hold a place among them."""

    def __init__(
        self,
        concurrency: int,
        default_timeout: float | None,
        pool: ProcessPool | None,
        executor: ThreadPool | Executor | None,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        observe: Callable[[float], None] | None = None,
    ) -> None:
        """``observe`` hears how many seconds each try ran (not counting its wait for a slot)."""
        self.slots = Slots(concurrency)
        self.observe = observe
        self.default_timeout = default_timeout
        self.pool = pool
        self.threads = (
            executor
            if executor is None or isinstance(executor, ThreadPool)
            else ThreadPool(concurrency)
        )
        self.max_value_bytes = max_value_bytes
        if pool is not None:  # a busy child holds a slot; the pool times its tries
            pool.slots, pool.observe = self.slots, observe
        self.running = 0
        # Tries that may be cancelled: (the queue's ops, task id) -> its Stop, set to stop it.
        self.cancels: dict[CancelToken, Stop] = {}

    async def run(self, ops: Ops, request: RunTry) -> TryResult:
        invocation = request.invocation
        timeout = invocation.settings.timeout
        if timeout is None:
            timeout = self.default_timeout
        token = (ops, request.claim.task_id)
        stop = self.cancels[token] = Stop()
        try:
            if self.pool is not None and not invocation.is_async:
                # The pool takes a slot for each busy child and feeds it several tries.
                result = await self._watched(invocation, timeout, stop)
            else:
                result = await self._in_slot(invocation, timeout, stop)
        finally:
            self.cancels.pop(token, None)
        return within_limit(result, self.max_value_bytes)

    async def _in_slot(
        self, invocation: Invocation, timeout: float | None, stop: Stop
    ) -> TryResult:
        async with self.slots:
            if stop.requested:  # cancelled while it waited for a slot
                return Stopped()
            self.running += 1
            began = time.monotonic()
            try:
                return await self._watched(invocation, timeout, stop)
            finally:
                self.running -= 1
                if self.observe is not None:
                    self.observe(time.monotonic() - began)

    async def _watched(
        self, invocation: Invocation, timeout: float | None, stop: Stop
    ) -> TryResult:
        """The try as a future (a task of its own, or the process pool's future), which ``stop``
        cancels (a child process is killed; a thread is abandoned and runs on)."""
        running: asyncio.Future[TryResult]
        if self.pool is not None and not invocation.is_async:  # its children have the middleware
            running = self.pool.submit(invocation.name, invocation.args, timeout,
                                       self.max_value_bytes, invocation.task)  # fmt: skip
        else:
            running = asyncio.ensure_future(self._invoke(invocation, timeout))
        stop.running = running
        try:
            return await running
        except TimeoutError:
            return TimedOut(timeout)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if stop.requested and (current is None or not current.cancelling()):
                return Stopped()
            running.cancel()  # the worker itself is being cancelled
            raise
        finally:
            stop.running = None

    async def _invoke(self, invocation: Invocation, timeout: float | None) -> TryResult:
        function, args = invocation.function, invocation.args
        task, middleware = invocation.task, invocation.middleware
        if invocation.is_async:
            return await asyncio.wait_for(run_coroutine(function, args, task, middleware), timeout)
        if self.threads is None:  # pool "inline": on the event loop, for short functions
            return run_call(function, args, task, middleware)
        return await self.threads.run(invocation.name, function, args, timeout, task, middleware)
