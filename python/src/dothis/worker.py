"""The worker: claims tasks, hands each to a Runner, keeps its lease, recovers and schedules.

One asyncio loop does all Redis work. ``async def`` functions run on it; plain functions run in a
pool of ``concurrency`` child processes (``pool="process"``, the default: a try can be stopped at
its timeout) or threads (``pool="thread"``). At most ``concurrency`` tasks are claimed at once, and
every claimed task sits in ``<queue>:executing`` with this worker recorded as its owner.
"""

from __future__ import annotations

import asyncio
import faulthandler
import functools
import logging
import os
import random
import signal
import threading
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, cast

import redis

from dothis.connection import connect_async, resolve_url
from dothis.lanes import PROMOTE_BATCH, Lane, check_redis, worker_fields
from dothis.pool import ProcessPool
from dothis.protocol import (
    DEFAULT_FAILURE_TTL,
    DEFAULT_HEARTBEAT_MS,
    DEFAULT_LEASE_MS,
    DEFAULT_MAX_CLAIMS,
    DEFAULT_MAX_FIELDS,
    DEFAULT_MAX_VALUE_BYTES,
    DEFAULT_QUEUE,
    DEFAULT_REAP_MS,
    DEFAULT_RESULT_TTL,
    DEFAULT_RETRY_BASE_MS,
    DEFAULT_RETRY_MAX_MS,
    DEFAULT_SCHEDULE_MS,
    ID_MAX_BYTES,
    Keys,
    check_name,
)
from dothis.registry import Registry, default_registry
from dothis.runner import REDIS_ERRORS
from dothis.schedules import Scheduler
from dothis.scripts import Scripts

log = logging.getLogger("dothis.worker")

# Fault injection for the crash tests (SPEC.md 9.5): DOTHIS_CRASH_AT=<step> makes the worker
# SIGKILL itself right after that step of its first task.
CRASH_STEPS = ("claimed", "started", "ran", "finished")
MULTI_QUEUE_BLOCK_SECONDS = 0.25
CLAIM_BATCH = 100


def _stuck_exit() -> None:
    """A worker that has not left well after its grace period: show where it is, then exit."""
    log.error("the worker did not stop within its grace period; the stacks of every thread "
              "follow, then it exits with status 1")  # fmt: skip
    faulthandler.dump_traceback(all_threads=True)
    logging.shutdown()
    os._exit(1)


def _crash_step() -> str | None:
    step = os.environ.get("DOTHIS_CRASH_AT") or None
    if step is not None and step not in CRASH_STEPS:
        raise ValueError(f"DOTHIS_CRASH_AT={step!r}: use one of {', '.join(CRASH_STEPS)}")
    return step


@dataclass(frozen=True)
class WorkerOptions:
    """Tuning of one worker; the defaults are SPEC.md's."""

    concurrency: int = 1
    prefetch: int = 0
    pool: str = "process"
    timeout: float | None = None
    lease_ms: int = DEFAULT_LEASE_MS
    heartbeat_ms: int = DEFAULT_HEARTBEAT_MS
    reap_ms: int = DEFAULT_REAP_MS
    max_claims: int = DEFAULT_MAX_CLAIMS
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES
    max_fields: int = DEFAULT_MAX_FIELDS
    retry_base_ms: int = DEFAULT_RETRY_BASE_MS
    retry_max_ms: int = DEFAULT_RETRY_MAX_MS
    schedule_ms: int = DEFAULT_SCHEDULE_MS
    result_ttl: int = DEFAULT_RESULT_TTL
    failure_ttl: int = DEFAULT_FAILURE_TTL
    cancel_check_ms: int = 500
    grace_seconds: float = 30.0
    block_seconds: float = 2.0

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.prefetch < 0:
            raise ValueError("concurrency must be at least 1 and prefetch at least 0")
        if self.pool not in ("process", "thread", "inline"):
            raise ValueError("pool must be process, thread or inline")
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError("timeout must be positive")
        if not 0 < self.heartbeat_ms < self.lease_ms:
            raise ValueError("heartbeat must be positive and shorter than the lease")
        if min(self.reap_ms, self.max_claims, self.max_value_bytes, self.schedule_ms) < 1:
            raise ValueError(
                "reap-ms, max-claims, max-value-bytes and schedule-ms must be positive"
            )
        for ttl in (self.result_ttl, self.failure_ttl):
            if ttl < 1 and ttl != -1:
                raise ValueError("result-ttl and failure-ttl are seconds, or -1 to keep forever")
        if not 0 < self.retry_base_ms <= self.retry_max_ms:
            raise ValueError("retry-base-ms must be positive and at most retry-max-ms")


class Worker:
    """Serves one queue, or several in priority order (``queue=["high", "low"]``)."""

    def __init__(
        self,
        queue: str | Sequence[str] = DEFAULT_QUEUE,
        url: str | None = None,
        *,
        registry: Registry | None = None,
        worker_id: str | None = None,
        options: WorkerOptions | None = None,
    ) -> None:
        self.queues = [queue] if isinstance(queue, str) else list(dict.fromkeys(queue))
        if not self.queues:
            raise ValueError("a worker serves at least one queue")
        self.keys = Keys(self.queues[0])
        for name in self.queues[1:]:
            Keys(name)  # checks the name
        self.url = resolve_url(url)
        self.registry = registry if registry is not None else default_registry
        self.id = check_name(worker_id or str(uuid.uuid4()), "worker id", ID_MAX_BYTES)
        self.options = options or WorkerOptions()
        self._stopping = threading.Event()
        self.forced = threading.Event()
        self._wakeup: asyncio.Event | None = None
        self._stop_event: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running: dict[asyncio.Task[None], tuple[Lane, bytes]] = {}
        self._crash_at = _crash_step()
        self.lanes: list[Lane] = []
        self._idle = True  # the last claim found nothing: block for one entry, do not batch

    @property
    def runner(self) -> Any:
        """The first queue's runner (the only one for a one-queue worker)."""
        return self.lanes[0].runner if self.lanes else None

    @property
    def processed(self) -> int:
        return sum(lane.runner.processed for lane in self.lanes)

    # -- lifecycle -------------------------------------------------------------------------

    def run(self) -> None:
        """Serve until SIGINT/SIGTERM (or ``stop()``); returns when the worker has left."""
        asyncio.run(self.serve())

    def stop(self, *, force: bool = False) -> None:
        """Stop claiming; running tasks finish (``force``: they go back to pending now)."""
        if force:
            self.forced.set()
        self._stopping.set()
        loop, wakeup, stop_event = self._loop, self._wakeup, self._stop_event
        if loop is None or wakeup is None or stop_event is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(wakeup.set)
        loop.call_soon_threadsafe(stop_event.set)

    def _on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self._stopping.is_set():
            log.warning("second %s: returning running tasks to pending and exiting", name)
            self.stop(force=True)
        else:
            log.info("%s: finishing %d running task(s), then exiting (again to force)", name,
                     len(self._running))  # fmt: skip
            self.stop()
            watchdog = threading.Timer(self.options.grace_seconds + 10, _stuck_exit)
            watchdog.daemon = True
            watchdog.start()

    async def serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        self._stop_event = asyncio.Event()
        if self._stopping.is_set():
            self._stop_event.set()
        self.client = connect_async(self.url)
        self.blocking = connect_async(self.url, blocking_seconds=self.options.block_seconds)
        self.scripts = Scripts(self.client)
        try:
            await check_redis(self.client, self.url)
        except BaseException:
            await self._close_clients()
            raise
        # Children are forked before anything else runs, so they carry no other state.
        pool = ProcessPool(self.options.concurrency, self.registry)
        executor = None
        if self.options.pool == "process":
            pool.start()
        elif self.options.pool == "thread":
            executor = ThreadPoolExecutor(self.options.concurrency, thread_name_prefix="dothis")
        main_thread = threading.current_thread() is threading.main_thread()
        if main_thread:
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._loop.add_signal_handler(signum, self._on_signal, signum)
        runner_args = (pool if self.options.pool == "process" else None, executor,
                       self._crash_point, self.forced)  # fmt: skip
        self.lanes = [Lane(self, name, runner_args) for name in self.queues]
        try:
            fields = worker_fields(self)
            for lane in self.lanes:
                await lane.register(fields)
            log.info("worker %s serving %s on %s (%s pool of %d) with %d function(s): %s",
                     self.id, ", ".join(self.queues), self.url, self.options.pool,
                     self.options.concurrency, len(self.registry),
                     ", ".join(self.registry.names()))  # fmt: skip
            background = [asyncio.create_task(self._heartbeat_loop()),
                          asyncio.create_task(self._reap_loop()),
                          asyncio.create_task(self._schedule_loop()),
                          asyncio.create_task(self._cancel_loop()),
                          asyncio.create_task(self._periodic_loop())]  # fmt: skip
            try:
                await self._claim_loop()
                await self._drain()
            finally:
                for job in background:
                    job.cancel()
                _, stuck = await asyncio.wait(background, timeout=5)
                if stuck:
                    log.warning("%d background loop(s) did not stop within 5 s", len(stuck))
                await self._leave()
        finally:
            await pool.close()
            if executor is not None:
                executor.shutdown(wait=not self.forced.is_set(), cancel_futures=True)
            await self._close_clients()
            if main_thread:
                for signum in (signal.SIGINT, signal.SIGTERM):
                    self._loop.remove_signal_handler(signum)

    async def _close_clients(self) -> None:
        await self.client.aclose()
        await self.blocking.aclose()

    async def _leave(self) -> None:
        try:
            if self._running:  # forced: give every running task back now
                for lane in self.lanes:
                    await self.client.delete(lane.keys.worker(self.id))
                for job, (lane, entry) in list(self._running.items()):
                    job.cancel()
                    await lane.release(entry)
            for lane in self.lanes:
                await self.client.delete(lane.keys.worker(self.id))
        except REDIS_ERRORS as error:
            log.warning("could not remove the worker keys of %s (%s); they expire with the lease",
                        self.id, error)  # fmt: skip
        log.info("worker %s stopped after %d task(s)", self.id, self.processed)

    async def _drain(self) -> None:
        """Let running tasks finish, for at most ``grace_seconds``; then they go back to pending."""
        deadline = self._loop_time() + self.options.grace_seconds
        while self._running and not self.forced.is_set():
            assert self._wakeup is not None
            self._wakeup.clear()
            left = deadline - self._loop_time()
            if left <= 0:
                log.warning("grace period of %.0f s is over: returning %d running task(s) to "
                            "pending", self.options.grace_seconds, len(self._running))  # fmt: skip
                self.forced.set()
                break
            waker = asyncio.create_task(self._wakeup.wait())
            await asyncio.wait([*self._running, waker], timeout=left,
                               return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
            waker.cancel()

    # -- background: lease, recovery, scheduled tasks, cancels, schedules ---------------------

    async def _every(self, seconds: float, what: str, action: Any) -> None:
        """Run ``action`` forever, ``seconds`` apart (jittered); a failure is logged, not fatal."""
        current = asyncio.current_task()
        while True:
            await asyncio.sleep(seconds * random.uniform(0.8, 1.2))
            try:
                await action()
            except REDIS_ERRORS as error:
                log.debug("%s failed (%s); retrying", what, error)
            except Exception:
                log.exception("%s failed; retrying", what)
            # A cancel that arrived during the action may surface as a connection error from
            # the client library; the loop must still end.
            if current is not None and current.cancelling():
                raise asyncio.CancelledError

    async def _heartbeat_loop(self) -> None:
        fields = worker_fields(self)

        async def beat() -> None:
            for lane in self.lanes:
                await lane.heartbeat(fields)

        await self._every(self.options.heartbeat_ms / 1000 / 1.2, "heartbeat", beat)

    async def _reap_loop(self) -> None:
        async def sweep() -> None:
            for lane in self.lanes:
                await lane.reaper.sweep()

        await self._every(self.options.reap_ms / 1000, "recovery sweep", sweep)

    async def _schedule_loop(self) -> None:
        async def promote() -> None:
            for lane in self.lanes:
                while await lane.promote_due() == PROMOTE_BATCH:
                    pass

        await self._every(self.options.schedule_ms / 1000, "promoting scheduled tasks", promote)

    async def _periodic_loop(self) -> None:
        """Fire the registry's periodic and cron schedules into the first queue."""
        if not self.registry.schedules:
            return
        scheduler = Scheduler(self.client, self.scripts, self.keys, self.registry.schedules)
        shortest = min((s.every for s in self.registry.schedules if s.every), default=1.0)
        await self._every(min(1.0, shortest / 4), "firing schedules", scheduler.tick)

    async def _cancel_loop(self) -> None:
        """Stop running tasks whose hash got cancel-requested (cancel.lua, or by hand)."""

        async def check() -> None:
            for lane in self.lanes:
                waiting = dict(lane.runner.cancels)
                if not waiting:
                    continue
                pipe = self.client.pipeline(transaction=False)
                for task_id in waiting:
                    pipe.hexists(lane.keys.task(task_id), "cancel-requested")
                flags = await pipe.execute(raise_on_error=False)
                for (task_id, event), requested in zip(waiting.items(), flags, strict=True):
                    if requested is True or requested == 1:
                        log.info("task %s: cancel requested; stopping it", task_id)
                        event.set()

        await self._every(self.options.cancel_check_ms / 1000, "checking cancels", check)

    # -- claiming ---------------------------------------------------------------------------

    async def _claim(self, wanted: int) -> list[tuple[Lane, bytes]]:
        """Up to ``wanted`` entries, each moved into its queue's executing list (LMOVE, one
        round trip per queue for the lot); queues in priority order. Blocks in BLMOVE on the
        first queue when all are empty."""
        claimed: list[tuple[Lane, bytes]] = []
        for lane in self.lanes:
            if (wanted == 1 or self._idle) and len(self.lanes) == 1:
                break  # one queue and one slot, or nothing waited last time: BLMOVE at once
            pipe = self.client.pipeline(transaction=False)
            for _ in range(wanted - len(claimed)):
                pipe.lmove(lane.keys.pending, lane.keys.executing, "RIGHT", "LEFT")
            moved = [entry for entry in await pipe.execute() if entry is not None]
            claimed += [(lane, cast(bytes, entry)) for entry in moved]
            if len(claimed) == wanted:
                return claimed
        if claimed:
            self._idle = False
            return claimed
        block = self.options.block_seconds if len(self.lanes) == 1 else MULTI_QUEUE_BLOCK_SECONDS
        first = self.lanes[0]
        entry = await self.blocking.blmove(
            first.keys.pending, first.keys.executing,
            cast(int, block),  # BLMOVE takes fractions of a second
            "RIGHT", "LEFT",
        )  # fmt: skip
        # Busy again once BLMOVE returns an entry: the next claim takes a whole batch.
        self._idle = entry is None
        return [] if entry is None else [(first, cast(bytes, entry))]

    async def _claim_loop(self) -> None:
        slots = asyncio.Semaphore(self.options.concurrency + self.options.prefetch)
        delay = 0.1
        outage: float | None = None
        while await self._free_slot(slots):
            wanted = 1
            while not slots.locked() and wanted < CLAIM_BATCH:
                await slots.acquire()  # free at once: no wait
                wanted += 1
            try:
                claimed = await self._claim(wanted)
                delay = 0.1
                if outage is not None:
                    log.warning("claiming again after %.1f s", self._loop_time() - outage)
                    outage = None
            except (*REDIS_ERRORS, redis.ResponseError) as error:
                for _ in range(wanted):
                    slots.release()
                if outage is None:  # one line per outage, not one per retry
                    outage = self._loop_time()
                    if isinstance(error, redis.ResponseError):
                        log.error("cannot claim: %s (is a key of the queue of the wrong type? "
                                  "SPEC.md 2.1); retrying with backoff", error)  # fmt: skip
                    else:
                        log.warning("lost Redis at %s (%s); reconnecting with backoff", self.url,
                                    error)  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            for _ in range(wanted - len(claimed)):
                slots.release()
            for lane, entry in claimed:
                job = asyncio.create_task(lane.runner.process(entry))
                self._running[job] = (lane, entry)
                job.add_done_callback(functools.partial(self._done, slots))

    async def _free_slot(self, slots: asyncio.Semaphore) -> bool:
        """Wait for a free slot; False once the worker is stopping (even while slots are busy)."""
        assert self._stop_event is not None
        if self._stopping.is_set():
            return False
        acquire = asyncio.ensure_future(slots.acquire())
        stopped = asyncio.ensure_future(self._stop_event.wait())
        await asyncio.wait({acquire, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not acquire.done():
            acquire.cancel()
            return False
        if self._stopping.is_set():
            slots.release()
            return False
        return True

    def _loop_time(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def _crash_point(self, step: str) -> None:
        if self._crash_at == step:
            log.warning("DOTHIS_CRASH_AT=%s: killing this worker now", step)
            os.kill(os.getpid(), signal.SIGKILL)

    def _done(self, slots: asyncio.Semaphore, job: asyncio.Task[None]) -> None:
        self._running.pop(job, None)
        slots.release()
        if self._wakeup is not None:
            self._wakeup.set()
        if not job.cancelled() and job.exception() is not None:
            log.error("task handling failed", exc_info=job.exception())
