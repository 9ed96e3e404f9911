"""The worker: claims tasks, hands each to a Runner, keeps its lease, recovers and schedules.

One asyncio loop does all Redis work. ``async def`` functions run on it; plain functions run in a
pool of ``concurrency`` child processes (``pool="process"``, the default: a try can be stopped at
its timeout) or threads (``pool="thread"``). At most ``concurrency`` tasks are claimed at once, and
every claimed task sits in ``<queue>:executing`` with this worker recorded as its owner.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
import signal
import socket
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, cast

import redis

from dothis import codec
from dothis.connection import connect_async, resolve_url, unreachable
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
    PROTOCOL_VERSION,
    Keys,
    check_name,
    now_iso,
    now_ms,
)
from dothis.reaper import Reaper
from dothis.registry import Registry, default_registry
from dothis.runner import REDIS_ERRORS, Runner
from dothis.schedules import Scheduler
from dothis.scripts import Scripts

log = logging.getLogger("dothis.worker")

# Fault injection for the crash tests (SPEC.md 9.5): DOTHIS_CRASH_AT=<step> makes the worker
# SIGKILL itself right after that step of its first task.
CRASH_STEPS = ("claimed", "started", "ran", "finished")
PROMOTE_BATCH = 100


def _crash_step() -> str | None:
    step = os.environ.get("DOTHIS_CRASH_AT") or None
    if step is not None and step not in CRASH_STEPS:
        raise ValueError(f"DOTHIS_CRASH_AT={step!r}: use one of {', '.join(CRASH_STEPS)}")
    return step


@dataclass(frozen=True)
class WorkerOptions:
    """Tuning of one worker; the defaults are SPEC.md's."""

    concurrency: int = 1
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
    block_seconds: float = 2.0

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.pool not in ("process", "thread"):
            raise ValueError("pool must be process or thread")
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
    def __init__(
        self,
        queue: str = DEFAULT_QUEUE,
        url: str | None = None,
        *,
        registry: Registry | None = None,
        worker_id: str | None = None,
        options: WorkerOptions | None = None,
    ) -> None:
        self.keys = Keys(queue)
        self.url = resolve_url(url)
        self.registry = registry if registry is not None else default_registry
        self.id = check_name(worker_id or str(uuid.uuid4()), "worker id", ID_MAX_BYTES)
        self.options = options or WorkerOptions()
        self._stopping = threading.Event()
        self.forced = threading.Event()
        self._wakeup: asyncio.Event | None = None
        self._stop_event: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running: dict[asyncio.Task[None], bytes] = {}
        self._crash_at = _crash_step()
        self.runner: Runner | None = None

    @property
    def processed(self) -> int:
        return self.runner.processed if self.runner else 0

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
            await self._check_redis()
        except BaseException:
            await self._close_clients()
            raise
        # Children are forked before anything else runs, so they carry no other state.
        pool = ProcessPool(self.options.concurrency, self.registry)
        executor = None
        if self.options.pool == "process":
            pool.start()
        else:
            executor = ThreadPoolExecutor(self.options.concurrency, thread_name_prefix="dothis")
        main_thread = threading.current_thread() is threading.main_thread()
        if main_thread:
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._loop.add_signal_handler(signum, self._on_signal, signum)
        self.runner = Runner(self.client, self.scripts, self.keys, self.id, self.options,
                             self.registry, pool if executor is None else None, executor,
                             self._crash_point, self.forced)  # fmt: skip
        self.reaper = Reaper(self.client, self.scripts, self.keys, self.id,
                             self.options.lease_ms, self.options.max_claims,
                             self.runner.followups)  # fmt: skip
        try:
            await self._register()
            log.info("worker %s serving queue %s on %s (%s pool of %d) with %d function(s): %s",
                     self.id, self.keys.queue, self.url, self.options.pool,
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
                await asyncio.gather(*background, return_exceptions=True)
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

    async def _check_redis(self) -> None:
        try:
            await self.client.ping()
        except REDIS_ERRORS as error:
            raise unreachable(self.url, error) from error
        try:
            config: dict[Any, Any] = await self.client.config_get("maxmemory-policy")
        except redis.ResponseError:
            return  # CONFIG is disabled on some hosted Redis; nothing to check then
        policy = config.get(b"maxmemory-policy")
        try:
            persistence: dict[Any, Any] = await self.client.config_get("appendonly")
        except redis.ResponseError:
            persistence = {}
        if persistence.get(b"appendonly") == b"no":
            log.info(
                "Redis has appendonly no: a Redis crash can lose acknowledged tasks "
                "(SPEC.md 4.4); use appendonly yes with appendfsync everysec or always"
            )
        if policy not in (None, b"noeviction"):
            log.warning(
                "Redis maxmemory-policy is %s: it can evict task hashes and worker keys "
                "and lose tasks; set maxmemory-policy noeviction",
                policy.decode(),
            )

    def _worker_fields(self) -> dict[str, str]:
        from dothis import __version__

        now = now_iso()
        return {
            "id": self.id,
            "host": socket.gethostname(),
            "pid": str(os.getpid()),
            "language": "python",
            "version": __version__,
            "protocol": str(PROTOCOL_VERSION),
            "queues": codec.encode([self.keys.queue]),
            "functions": codec.encode(self.registry.names()),
            "concurrency": str(self.options.concurrency),
            "started": now,
            "heartbeat": now,
        }

    async def _register(self) -> None:
        key = self.keys.worker(self.id)
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(key, mapping=cast(Any, self._worker_fields()))
        pipe.pexpire(key, self.options.lease_ms)
        await pipe.execute()

    async def _leave(self) -> None:
        try:
            if self._running:  # forced: give every running task back now
                await self.client.delete(self.keys.worker(self.id))
                for job, entry in list(self._running.items()):
                    job.cancel()
                    await self._release(entry)
            await self.client.delete(self.keys.worker(self.id))
        except REDIS_ERRORS as error:
            log.warning(
                "could not remove worker key %s (%s); it expires with its lease",
                self.keys.worker(self.id),
                error,
            )
        log.info("worker %s stopped after %d task(s)", self.id, self.processed)

    async def _release(self, entry: bytes) -> None:
        """Return one of this worker's running tasks to pending (recover.lua, not a loss)."""
        task_id, _ = self.keys.parse_entry(entry)
        if task_id is None:
            return
        key = self.keys.task(task_id)
        await self.scripts.recover(
            keys=[key, self.keys.executing, self.keys.pending, self.keys.failed,
                  self.keys.dependents(task_id), self.keys.releasing, self.keys.worker(self.id)],
            args=[entry, self.id, 0, now_iso(), self.keys.results, key, task_id, now_ms()],
        )  # fmt: skip

    async def _drain(self) -> None:
        while self._running and not self.forced.is_set():
            assert self._wakeup is not None
            self._wakeup.clear()
            done, _ = await asyncio.wait(
                [*self._running, asyncio.create_task(self._wakeup.wait())],
                return_when=asyncio.FIRST_COMPLETED,
            )
            for job in done:
                if job not in self._running:
                    job.cancel()

    # -- background: lease, recovery, scheduled tasks ---------------------------------------

    async def _heartbeat_loop(self) -> None:
        key = self.keys.worker(self.id)
        while True:
            await asyncio.sleep(self.options.heartbeat_ms / 1000)
            try:
                pipe = self.client.pipeline(transaction=True)
                pipe.hset(key, "heartbeat", now_iso())
                pipe.pexpire(key, self.options.lease_ms)
                added, _ = await pipe.execute()
                if added:  # the field was new: the key had expired
                    log.warning("worker key %s had expired (the worker was stalled or Redis lost "
                                "it); its tasks may run elsewhere too", key)  # fmt: skip
                    await self._register()
            except REDIS_ERRORS as error:
                log.debug("heartbeat failed (%s); retrying", error)
            except Exception:
                log.exception("heartbeat failed; retrying")

    async def _reap_loop(self) -> None:
        while True:
            await asyncio.sleep(self.options.reap_ms / 1000 * random.uniform(0.8, 1.2))
            try:
                await self.reaper.sweep()
            except REDIS_ERRORS as error:
                log.debug("recovery sweep failed (%s); retrying", error)
            except Exception:  # a background loop must not die: log it and go on
                log.exception("recovery sweep failed; retrying at the next pass")

    async def _schedule_loop(self) -> None:
        while True:
            try:
                promoted = await self.promote_due()
            except REDIS_ERRORS as error:
                log.debug("promoting scheduled tasks failed (%s); retrying", error)
                promoted = 0
            except Exception:
                log.exception("promoting scheduled tasks failed; retrying")
                promoted = 0
            if promoted < PROMOTE_BATCH:
                await asyncio.sleep(self.options.schedule_ms / 1000 * random.uniform(0.8, 1.2))

    async def _periodic_loop(self) -> None:
        """Fire the registry's periodic and cron schedules (fire.lua: once per occurrence)."""
        if not self.registry.schedules:
            return
        scheduler = Scheduler(self.client, self.scripts, self.keys, self.registry.schedules)
        shortest = min((s.every for s in self.registry.schedules if s.every), default=1.0)
        while True:
            try:
                await scheduler.tick()
            except REDIS_ERRORS as error:
                log.debug("firing schedules failed (%s); retrying", error)
            except Exception:
                log.exception("firing schedules failed; retrying")
            await asyncio.sleep(min(1.0, shortest / 4) * random.uniform(0.8, 1.0))

    async def _cancel_loop(self) -> None:
        """Stop running tasks whose hash got cancel-requested (cancel.lua, or by hand)."""
        assert self.runner is not None
        while True:
            await asyncio.sleep(self.options.cancel_check_ms / 1000)
            waiting = dict(self.runner.cancels)
            if not waiting:
                continue
            try:
                pipe = self.client.pipeline(transaction=False)
                for task_id in waiting:
                    pipe.hexists(self.keys.task(task_id), "cancel-requested")
                flags = await pipe.execute(raise_on_error=False)
            except REDIS_ERRORS:
                continue
            for (task_id, event), requested in zip(waiting.items(), flags, strict=True):
                if requested is True or requested == 1:
                    log.info("task %s: cancel requested; stopping it", task_id)
                    event.set()

    async def promote_due(self) -> int:
        """Move due entries of <queue>:scheduled to pending (promote.lua); how many moved."""
        now = now_ms()
        due = cast(
            list[bytes],
            await self.client.zrangebyscore(
                self.keys.scheduled, "-inf", now, start=0, num=PROMOTE_BATCH
            ),
        )
        if not due:
            return 0
        pipe = self.client.pipeline(transaction=False)
        for entry in due:
            task_id, _ = self.keys.parse_entry(entry)
            # An invalid id gets no key of its own; the claim that follows rejects it.
            key = self.keys.task(task_id) if task_id is not None else self.keys.task_prefix
            await self.scripts.promote(keys=[key, self.keys.scheduled, self.keys.pending],
                                       args=[entry, now], client=pipe)  # fmt: skip
        return sum(await pipe.execute())

    # -- claiming ---------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        slots = asyncio.Semaphore(self.options.concurrency)
        delay = 0.1
        outage: float | None = None
        assert self.runner is not None
        while await self._free_slot(slots):
            try:
                entry = await self.blocking.blmove(
                    self.keys.pending, self.keys.executing,
                    cast(int, self.options.block_seconds),  # BLMOVE takes fractions of a second
                    "RIGHT", "LEFT",
                )  # fmt: skip
                delay = 0.1
                if outage is not None:
                    log.warning("claiming from %s again after %.1f s", self.keys.pending,
                                self._loop_time() - outage)  # fmt: skip
                    outage = None
            except (*REDIS_ERRORS, redis.ResponseError) as error:
                slots.release()
                if outage is None:  # one line per outage, not one per retry
                    outage = self._loop_time()
                    if isinstance(error, redis.ResponseError):
                        log.error("cannot claim from %s: %s (is a key of the queue of the wrong "
                                  "type? SPEC.md 2.1); retrying with backoff", self.keys.pending,
                                  error)  # fmt: skip
                    else:
                        log.warning("lost Redis at %s (%s); reconnecting with backoff", self.url,
                                    error)  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if entry is None:
                slots.release()
                continue
            claimed = cast(bytes, entry)
            job = asyncio.create_task(self.runner.process(claimed))
            self._running[job] = claimed
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
