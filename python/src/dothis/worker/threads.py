"""The thread pool of ``pool="thread"``: threads for plain functions, started as tries need them.

A thread whose try timed out cannot be stopped; it is abandoned and no longer counts against the
pool, so the next try never waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dothis.engine.context import Middleware, TaskContext
from dothis.engine.tries import TryResult, run_call

log = logging.getLogger("dothis.pool")


@dataclass
class _Job:
    call: Callable[[], TryResult]  # the try: run_call with its function, args, task, middleware
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[TryResult]

    def deliver(self, result: TryResult) -> None:
        def settle() -> None:
            if not self.future.done():
                self.future.set_result(result)

        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits any more
            self.loop.call_soon_threadsafe(settle)


class _PoolThread:
    def __init__(self, pool: ThreadPool, number: int) -> None:
        self.jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.job: _Job | None = None  # the one it runs, set by the pool
        self.abandoned = False
        self.thread = threading.Thread(target=pool._serve, args=(self,), daemon=True,
                                       name=f"{pool.name_prefix}-{number}")  # fmt: skip


class ThreadPool:
    """Threads for plain functions (``pool="thread"``), started as tries need them and reused.

    A try that outlives its timeout, or is cancelled, cannot be stopped: its thread is abandoned
    (it runs on in the background, its result ignored, and ends when the function returns) and
    no longer counts, so the next try gets another thread. More than ``max_abandoned`` abandoned
    threads at once is logged as an error. Idle threads end after ``idle_seconds``; all are
    daemon threads, so none keeps the process from exiting.

    ``shutdown`` takes ``ThreadPoolExecutor.shutdown``'s arguments.
    """

    def __init__(
        self,
        size: int,
        *,
        max_abandoned: int | None = None,
        idle_seconds: float = 30.0,
        name_prefix: str = "dothis",
    ) -> None:
        self.size = size
        self.max_abandoned = max(size, 4) if max_abandoned is None else max_abandoned
        self.idle_seconds = idle_seconds
        self.name_prefix = name_prefix
        self._lock = threading.Lock()
        self._idle: list[_PoolThread] = []
        self._busy: set[_PoolThread] = set()
        self._abandoned: set[_PoolThread] = set()
        self._started = 0
        self._closed = False

    @property
    def abandoned(self) -> int:
        """Threads still running a try nobody waits for."""
        with self._lock:
            return len(self._abandoned)

    async def run(
        self,
        name: str,
        function: Callable[..., Any],
        args: dict[str, Any],
        timeout: float | None,
        task: TaskContext | None = None,
        middleware: Sequence[Middleware] = (),
    ) -> TryResult:
        """``function(**args)`` in a thread; TimeoutError after ``timeout`` s."""
        loop = asyncio.get_running_loop()
        call = functools.partial(run_call, function, args, task, middleware)
        job = _Job(call, loop, loop.create_future())
        worker = self._take(job)
        worker.jobs.put(job)
        try:
            return await asyncio.wait_for(job.future, timeout)
        except TimeoutError:
            self._abandon(worker, job, f"a thread running {name} outlived its timeout; it keeps "
                                       "running in the background")  # fmt: skip
            raise
        except asyncio.CancelledError:
            self._abandon(worker, job, f"a thread running {name} was cancelled; it keeps running "
                                       "in the background")  # fmt: skip
            raise

    def _take(self, job: _Job) -> _PoolThread:
        start = False
        with self._lock:
            if self._closed:
                raise RuntimeError("the thread pool is shut down")
            if self._idle:
                worker = self._idle.pop()
            else:
                self._started += 1
                worker = _PoolThread(self, self._started)
                start = True
            worker.job = job
            self._busy.add(worker)
        if start:
            worker.thread.start()
        return worker

    def _abandon(self, worker: _PoolThread, job: _Job, message: str) -> None:
        with self._lock:
            if worker.job is not job:  # it has just finished
                return
            worker.abandoned = True
            self._busy.discard(worker)
            self._abandoned.add(worker)
            count = len(self._abandoned)
        log.warning(message)
        if count > self.max_abandoned:
            log.error("%d threads outlived their tries and keep running (more than %d): the "
                      "worker cannot stop them; restart it, or use the process pool, which stops "
                      "a try at its timeout", count, self.max_abandoned)  # fmt: skip

    def _serve(self, worker: _PoolThread) -> None:
        while True:
            try:
                job = worker.jobs.get(timeout=self.idle_seconds)
            except queue.Empty:
                with self._lock:
                    if worker in self._idle:  # still idle: end
                        self._idle.remove(worker)
                        return
                continue  # taken just now: its job is on the way
            if job is None:
                return
            result = job.call()
            with self._lock:
                worker.job = None
                self._busy.discard(worker)
                abandoned = worker.abandoned
                if abandoned:
                    self._abandoned.discard(worker)
                elif not self._closed:
                    self._idle.append(worker)
                ends = abandoned or self._closed
            if not abandoned:
                job.deliver(result)
            if ends:
                return

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """End the idle threads, and those running a try when it returns; ``wait``: for them
        (never for abandoned threads). ``cancel_futures`` is accepted for ThreadPoolExecutor's
        sake: no try ever waits for a thread here."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            busy = list(self._busy)
        for worker in idle:
            worker.jobs.put(None)
        if wait:
            for worker in (*idle, *busy):
                if worker.thread is not threading.current_thread():
                    worker.thread.join()
