"""The worker: claims tasks and runs each through the engine's flow, keeps its lease, recovers,
promotes and fires schedules.

One asyncio loop does all Redis work. ``async def`` functions run on it; plain functions run in a
pool of ``concurrency`` child processes (``pool="process"``, the default: a try can be stopped at
its timeout), threads (``pool="thread"``) or inline. At most ``concurrency`` tries run at once over
all the worker's queues, and every claimed task sits in ``<queue>:executing`` with this worker
recorded as its owner.
"""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from dothis.engine.context import set_reporter
from dothis.engine.decide import RetryPolicy
from dothis.engine.events import Observers
from dothis.engine.flow import Flow, RunTry, drive_async
from dothis.engine.hooks import await_hooks
from dothis.engine.lifecycle import Context, process
from dothis.engine.progress import ProgressWriter
from dothis.engine.registry import Registry, default_registry
from dothis.engine.tries import TryResult, serve_tries_here
from dothis.store.connection import REDIS_ERRORS, connect_async, redact, resolve_url
from dothis.store.execute import AsyncStore
from dothis.store.ops import Limits, Ops
from dothis.store.replies import Recovered, StartReply
from dothis.store.shards import declare_async
from dothis.store.topology import check_queues, with_settings
from dothis.wire.protocol import DEFAULT_QUEUE, ID_MAX_BYTES, Keys, check_name
from dothis.wire.records import Claim, worker_record
from dothis.wire.shards import Shards, expand, groups
from dothis.worker import tracing
from dothis.worker.background import Background, Concern
from dothis.worker.burst import Burst
from dothis.worker.cancels import CancelWatcher
from dothis.worker.claims import Claimer
from dothis.worker.clockcheck import ClockCheck
from dothis.worker.heartbeat import Heartbeat
from dothis.worker.lane import Lane
from dothis.worker.logs import TaskLog
from dothis.worker.options import WorkerOptions
from dothis.worker.pool import ProcessPool
from dothis.worker.prefetch import Prefetch
from dothis.worker.promoter import Promoter
from dothis.worker.reaper import Reaper
from dothis.worker.redis_check import check_redis
from dothis.worker.running import RunningNow
from dothis.worker.scheduler import Scheduler
from dothis.worker.threads import ThreadPool
from dothis.worker.tries import Tries

if TYPE_CHECKING:
    from dothis.worker.metrics import WorkerMetrics

log = logging.getLogger("dothis.worker")

# Fault injection for the crash tests (SPEC.md 9.6): DOTHIS_CRASH_AT=<step> makes the worker
# SIGKILL itself right after that step of its first task.
CRASH_STEPS = ("claimed", "started", "ran", "finished")
BURST_BLOCK_SECONDS = 0.25
POOL_GRACE_SECONDS = 5.0  # for pool children to run their shutdown hooks


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


class Worker:
    """Serves one queue, or several in priority order (``queue=["high", "low"]``); a sharded
    queue (``Shards("emails", 4)``, or every name with ``shards=4``) is served fairly over its
    shards (SPEC.md 11.2)."""

    # A stop signal repeated within this many seconds is the same stop delivered twice (a
    # supervisor forwarding the SIGTERM a service manager also sent to every process), not a
    # request to force. 0: every repeat forces (a worker run by hand: Ctrl-C twice).
    repeat_window = 0.0

    def __init__(
        self,
        queue: str | Shards | Sequence[str | Shards] = DEFAULT_QUEUE,
        url: str | None = None,
        *,
        registry: Registry | None = None,
        worker_id: str | None = None,
        options: WorkerOptions | None = None,
        tls_ca: str | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        cluster: bool | None = None,
        shards: int | None = None,
    ) -> None:
        served = expand([queue] if isinstance(queue, str | Shards) else list(queue), shards)
        self.sharded = [item for item in served if isinstance(item, Shards)]
        self.groups = groups(served)  # claimed in turn within a group, groups in priority order
        self.queues = [name for group in self.groups for name in group]
        if not self.queues:
            raise ValueError("a worker serves at least one queue")
        self.keys = [Keys(name) for name in self.queues]  # checks every name
        # TLS files and cluster mode travel in the URL, so every connection made from it (the
        # heartbeat thread's, the pool's, a progress writer's) reaches the server the same way.
        self.url = with_settings(resolve_url(url), tls_ca=tls_ca, tls_cert=tls_cert,
                                 tls_key=tls_key, cluster=cluster)  # fmt: skip
        check_queues(self.url, self.queues)  # on a cluster, every name carries a hash tag
        self.registry = registry if registry is not None else default_registry
        tracing.install(self.registry)  # a consumer span around every call (before any fork)
        self.id = check_name(worker_id or str(uuid.uuid4()), "worker id", ID_MAX_BYTES)
        self.options = options or WorkerOptions()
        self._stopping = threading.Event()
        self.forced = threading.Event()
        self._wakeup: asyncio.Event | None = None
        self._stop_event: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running: dict[asyncio.Task[Any], tuple[Lane, bytes]] = {}
        self._slot_freed: set[asyncio.Task[Any]] = set()  # jobs whose try is over
        self._crash_at = _crash_step()
        self._stop_signalled = 0.0
        self.lanes: list[Lane] = []
        # Who hears of every task event (engine/events.py): the log lines, metrics, traces.
        self.running = RunningNow()
        self.metrics: WorkerMetrics | None = None  # served when options.metrics_port is set
        self.observers = Observers([TaskLog(), self.running])

    @property
    def processed(self) -> int:
        """Tasks whose outcome (or next try) this worker has recorded."""
        return sum(lane.context.processed for lane in self.lanes)

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
        now = time.monotonic()
        if self._stopping.is_set() and now - self._stop_signalled < self.repeat_window:
            log.debug("%s again within %.1f s: the same stop, delivered twice", name,
                      self.repeat_window)  # fmt: skip
            return
        if self._stopping.is_set():
            log.warning("second %s: returning running tasks to pending and exiting", name)
            self.stop(force=True)
        else:
            log.info("%s: finishing %d running task(s), then exiting (again to force)", name,
                     len(self._running))  # fmt: skip
            self._stop_signalled = now
            self.stop()
            watchdog = threading.Timer(self.options.grace_seconds + 10, _stuck_exit)
            watchdog.daemon = True
            watchdog.start()

    async def serve(self) -> None:
        serve_tries_here()  # a process task code forks exits when it comes back from the task
        set_reporter(ProgressWriter(self.url))  # tasks' progress(), here and in pool children
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        self._stop_event = asyncio.Event()
        if self._stopping.is_set():
            self._stop_event.set()
        self.store = AsyncStore(connect_async(self.url))
        blocking = AsyncStore(connect_async(self.url, blocking_seconds=self._block_seconds()))
        try:
            await check_redis(self.store.client, self.url)
            for sharded in self.sharded:  # refuses a shard count other than the declared one
                await declare_async(self.store.client, sharded)
            await self._with_pools(blocking)
        finally:
            await self.store.client.aclose()
            await blocking.client.aclose()

    async def _with_pools(self, blocking: AsyncStore) -> None:
        options = self.options
        # Children are forked before anything else runs, so they carry no other state.
        pool = ProcessPool(options.concurrency, self.registry)
        if options.pool == "process":
            pool.start()
        executor = ThreadPool(options.concurrency) if options.pool == "thread" else None
        try:
            # After the fork: the children inherit neither the metrics' socket nor what these
            # hooks set up (each child runs its own).
            if options.metrics_port is not None:  # prometheus_client only when it is served
                from dothis.worker.metrics import attach

                self.metrics = attach(self)
            await await_hooks(self.registry.startup)
            self.prefetch = Prefetch(options.prefetch, options.concurrency)
            self.tries = Tries(options.concurrency, options.timeout,
                               pool if options.pool == "process" else None, executor,
                               options.max_value_bytes, self.prefetch.observe)  # fmt: skip
            with self._signals():
                await self._serve(blocking)
            await await_hooks(self.registry.shutdown)
        finally:
            if self.metrics is not None:
                self.metrics.close()
            graceful = bool(self.registry.shutdown) and not self.forced.is_set()
            await pool.close(grace=POOL_GRACE_SECONDS if graceful else 0.0)
            if executor is not None:
                executor.shutdown(wait=not self.forced.is_set(), cancel_futures=True)

    def _block_seconds(self) -> float:
        """How long an idle claim blocks; short in burst mode, which must notice the end."""
        return min(self.options.block_seconds, BURST_BLOCK_SECONDS) if self.options.burst \
            else self.options.block_seconds  # fmt: skip

    def _stop_now(self) -> None:
        self._stopping.set()
        if self._stop_event is not None:
            self._stop_event.set()

    def _signals(self) -> _Signals:
        return _Signals(self)

    def _lanes(self) -> list[Lane]:
        options = self.options
        limits = Limits(options.max_value_bytes, options.max_fields)
        policy = RetryPolicy(options.retry_base_ms, options.retry_max_ms)
        lanes = []
        for keys in self.keys:
            ops = Ops(keys)
            lanes.append(Lane(keys, ops, Context(
                ops=ops, worker_id=self.id, registry=self.registry, limits=limits, policy=policy,
                result_ttl=options.result_ttl, failure_ttl=options.failure_ttl,
                stopping=self.forced.is_set, lease_ms=options.lease_ms, observe=self.observers,
                steps=self._crash_at is not None,
                hold=partial(self._hold, ops), release=partial(self._release, ops))))  # fmt: skip
        return lanes

    def _hold(self, ops: Ops, claim: Claim) -> None:
        self.heartbeat.hold(ops, claim)

    def _release(self, ops: Ops, claim: Claim) -> None:
        self.heartbeat.release(ops, claim.task_id)

    def _lost(self, ops: Ops, claim: Claim) -> None:
        """The heartbeat found a held task taken away (recovered elsewhere): stop its try."""
        log.warning("task %s is no longer this worker's (its lease ran out and it was recovered); "
                    "stopping its try", claim.task_id)  # fmt: skip
        cancel = self.tries.cancels.get((ops, claim.task_id))
        if cancel is not None:
            cancel.set()

    async def _serve(self, blocking: AsyncStore) -> None:
        options = self.options
        loop = asyncio.get_running_loop()
        self.lanes = self._lanes()
        fields = {**worker_record(self.id, self.queues, self.registry.names(),
                                  options.concurrency), "leases": "task"}  # fmt: skip
        heartbeat = self.heartbeat = Heartbeat(self.url, self.lanes, self.id, fields,
                                               options.lease_ms, options.heartbeat_ms,
                                               self.running.snapshot)  # fmt: skip
        await ClockCheck(self.store).tick()  # before any time is written
        await loop.run_in_executor(None, heartbeat.register)
        heartbeat.start(loop, self._lost)
        log.info("worker %s serving %s on %s (%s pool, concurrency %d, prefetch %s) with %d "
                 "function(s): %s", self.id, ", ".join(self.queues), redact(self.url),
                 options.pool, options.concurrency, self.prefetch.describe(),
                 len(self.registry), ", ".join(self.registry.names()))  # fmt: skip
        concerns: list[Concern] = [
            ClockCheck(self.store),
            Reaper(self.store, self.lanes, self._drive, self.id, options.lease_ms,
                   options.reap_ms, options.max_claims),
            Promoter(self.store, self.lanes, options.schedule_ms),
            CancelWatcher(self.store, self.tries, options.cancel_check_ms),
        ]  # fmt: skip
        if self.registry.schedules:
            concerns.append(Scheduler(self.store, self.lanes, self.registry.schedules))
        if options.burst:
            concerns.append(Burst(self.store, self.lanes, lambda: bool(self._running),
                                  self._stop_now))  # fmt: skip
        background = Background(concerns)
        background.start()
        self.claimer = Claimer(self.store, blocking, self.lanes, options.concurrency,
                               self.prefetch, self._block_seconds(), self.url,
                               [len(group) for group in self.groups])  # fmt: skip
        try:
            assert self._stop_event is not None
            await self.claimer.run(self._stop_event, self._hand_over)
            await self._drain()
        finally:
            await background.stop()
            heartbeat.stop()  # no lease renewed from here: a give-back is not raced
            await self._give_back()
            await loop.run_in_executor(None, heartbeat.leave)
            log.info("worker %s stopped after %d task(s)", self.id, self.processed)

    # -- one task -----------------------------------------------------------------------------

    def _hand_over(self, lane: Lane, entry: bytes, taken: StartReply | None) -> None:
        job = asyncio.create_task(self._drive(process(entry, lane.context, taken), lane))
        self._running[job] = (lane, entry)
        job.add_done_callback(self._done)

    async def _drive(self, flow: Flow[Any], lane: Lane | None = None) -> Any:
        run_try = partial(self._run_try, lane.ops if lane is not None else None)
        return await drive_async(flow, self.store, run_try, self._crash_point)

    async def _run_try(self, ops: Ops | None, request: RunTry) -> TryResult:
        assert ops is not None, "a flow without a lane asked for a try"
        try:
            return await self.tries.run(ops, request)
        finally:
            # The try is over: its slot frees now, so the next claim shares the pipeline of
            # this task's finish.
            job = asyncio.current_task()
            if job in self._running and job not in self._slot_freed:
                self._slot_freed.add(job)
                self.claimer.release()

    def _done(self, job: asyncio.Task[Any]) -> None:
        lane, entry = self._running.pop(job, (None, b""))
        task_id = lane.keys.parse_entry(entry)[0] if lane is not None else None
        if lane is not None and task_id is not None:  # however its handling ended
            self.heartbeat.release(lane.ops, task_id)
            self.running.forget(lane.keys.queue, task_id)
        if job in self._slot_freed:
            self._slot_freed.discard(job)
        else:
            self.claimer.release()
        if self._wakeup is not None:
            self._wakeup.set()
        if not job.cancelled() and job.exception() is not None:
            log.error("task handling failed", exc_info=job.exception())

    def _crash_point(self, step: str) -> None:
        if self._crash_at == step:
            log.warning("DOTHIS_CRASH_AT=%s: killing this worker now", step)
            os.kill(os.getpid(), signal.SIGKILL)

    # -- stopping -------------------------------------------------------------------------------

    async def _drain(self) -> None:
        """Let running tasks finish, for at most ``grace_seconds``; then they go back to pending."""
        assert self._loop is not None and self._wakeup is not None
        deadline = self._loop.time() + self.options.grace_seconds
        while self._running and not self.forced.is_set():
            self._wakeup.clear()
            left = deadline - self._loop.time()
            if left <= 0:
                log.warning("grace period of %.0f s is over: returning %d running task(s) to "
                            "pending", self.options.grace_seconds, len(self._running))  # fmt: skip
                self.forced.set()
                break
            waker = asyncio.create_task(self._wakeup.wait())
            await asyncio.wait([*self._running, waker], timeout=left,
                               return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
            waker.cancel()

    async def _give_back(self) -> None:
        """Forced: every running task goes back to pending now (recover.lua as its own owner,
        not counted as a loss)."""
        if not self._running:
            return
        for lane in self.lanes:  # no lease any more: recover.lua sees the owner gone
            await self.store.run(lane.ops.leave(self.id))
        for job, (lane, entry) in list(self._running.items()):
            job.cancel()
            task_id, _ = lane.keys.parse_entry(entry)
            if task_id is None:
                continue
            try:
                done = await self.store.run(
                    lane.ops.recover(entry, task_id, self.id, 0, lane.context.failure_ttl)
                )
            except REDIS_ERRORS:
                continue
            if done is Recovered.REQUEUED:
                log.info("task %s went back to %s", task_id, lane.keys.pending)


class _Signals:
    """SIGINT and SIGTERM stop the worker while it serves (when it runs on the main thread)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.installed = threading.current_thread() is threading.main_thread()

    def __enter__(self) -> None:
        if self.installed:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, self.worker._on_signal, signum)

    def __exit__(self, *exc: object) -> None:
        if self.installed:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
