"""The worker: claims tasks, runs registered functions, records outcomes, keeps its lease.

One asyncio loop does all Redis work. ``async def`` functions run on it; plain functions run in a
thread pool of ``concurrency`` threads. At most ``concurrency`` tasks are claimed at once, and every
claimed task sits in ``<queue>:executing`` with this worker recorded as its owner.
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
from dothis.execution import Call, Failure, failure_fields, prepare, success_fields
from dothis.protocol import (
    DEFAULT_HEARTBEAT_MS,
    DEFAULT_LEASE_MS,
    DEFAULT_MAX_CLAIMS,
    DEFAULT_MAX_FIELDS,
    DEFAULT_MAX_VALUE_BYTES,
    DEFAULT_QUEUE,
    DEFAULT_REAP_MS,
    DEFAULT_REJECTED_MAX,
    ID_MAX_BYTES,
    PROTOCOL_VERSION,
    ErrorCode,
    Keys,
    RejectCode,
    check_name,
    now_iso,
)
from dothis.reaper import Reaper, rejection
from dothis.registry import Registry, default_registry
from dothis.scripts import Scripts

log = logging.getLogger("dothis.worker")

REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)

# Fault injection for the crash tests (SPEC.md 9.5): DOTHIS_CRASH_AT=<step> makes the worker
# SIGKILL itself right after that step of its first task.
CRASH_STEPS = ("claimed", "started", "ran", "finished")


def _crash_step() -> str | None:
    step = os.environ.get("DOTHIS_CRASH_AT") or None
    if step is not None and step not in CRASH_STEPS:
        raise ValueError(f"DOTHIS_CRASH_AT={step!r}: use one of {', '.join(CRASH_STEPS)}")
    return step


@dataclass(frozen=True)
class WorkerOptions:
    """Tuning of one worker; the defaults are SPEC.md's."""

    concurrency: int = 1
    lease_ms: int = DEFAULT_LEASE_MS
    heartbeat_ms: int = DEFAULT_HEARTBEAT_MS
    reap_ms: int = DEFAULT_REAP_MS
    max_claims: int = DEFAULT_MAX_CLAIMS
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES
    max_fields: int = DEFAULT_MAX_FIELDS
    block_seconds: float = 2.0

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if not 0 < self.heartbeat_ms < self.lease_ms:
            raise ValueError("heartbeat must be positive and shorter than the lease")
        if self.reap_ms <= 0 or self.max_claims < 1 or self.max_value_bytes < 1:
            raise ValueError("reap-ms, max-claims and max-value-bytes must be positive")


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
        self._forced = threading.Event()
        self._wakeup: asyncio.Event | None = None
        self._stop_event: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running: dict[asyncio.Task[None], bytes] = {}
        self.processed = 0
        self._crash_at = _crash_step()

    # -- lifecycle -------------------------------------------------------------------------

    def run(self) -> None:
        """Serve until SIGINT/SIGTERM (or ``stop()``); returns when the worker has left."""
        asyncio.run(self.serve())

    def stop(self, *, force: bool = False) -> None:
        """Stop claiming; running tasks finish (``force``: they go back to pending now)."""
        if force:
            self._forced.set()
        self._stopping.set()
        loop, wakeup, stop_event = self._loop, self._wakeup, self._stop_event
        if loop is None or wakeup is None or stop_event is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(wakeup.set)
        loop.call_soon_threadsafe(stop_event.set)

    def _on_signal(self, signum: int) -> None:
        if self._stopping.is_set():
            log.warning(
                "second %s: returning running tasks to pending and exiting",
                signal.Signals(signum).name,
            )
            self.stop(force=True)
        else:
            log.info(
                "%s: finishing %d running task(s), then exiting (again to force)",
                signal.Signals(signum).name,
                len(self._running),
            )
            self.stop()

    async def serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        self._stop_event = asyncio.Event()
        if self._stopping.is_set():
            self._stop_event.set()
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._loop.add_signal_handler(signum, self._on_signal, signum)
        self.client = connect_async(self.url)
        self.blocking = connect_async(self.url, blocking_seconds=self.options.block_seconds)
        self.scripts = Scripts(self.client)
        self.executor = ThreadPoolExecutor(
            self.options.concurrency, thread_name_prefix="dothis-task"
        )
        self.reaper = Reaper(self.client, self.scripts, self.keys, self.id,
                             self.options.lease_ms, self.options.max_claims)  # fmt: skip
        try:
            await self._check_redis()
            await self._register()
            log.info(
                "worker %s serving queue %s on %s with %d function(s): %s",
                self.id,
                self.keys.queue,
                self.url,
                len(self.registry),
                ", ".join(self.registry.names()),
            )
            background = [asyncio.create_task(self._heartbeat_loop()),
                          asyncio.create_task(self._reap_loop())]  # fmt: skip
            try:
                await self._claim_loop()
                await self._drain()
            finally:
                for job in background:
                    job.cancel()
                await asyncio.gather(*background, return_exceptions=True)
                await self._leave()
        finally:
            self.executor.shutdown(wait=not self._forced.is_set(), cancel_futures=True)
            await self.client.aclose()
            await self.blocking.aclose()
            if threading.current_thread() is threading.main_thread():
                for signum in (signal.SIGINT, signal.SIGTERM):
                    self._loop.remove_signal_handler(signum)

    async def _check_redis(self) -> None:
        try:
            await self.client.ping()
        except REDIS_ERRORS as error:
            raise unreachable(self.url, error) from error
        try:
            config: dict[Any, Any] = await self.client.config_get("maxmemory-policy")
            policy = config.get(b"maxmemory-policy")
        except redis.ResponseError:
            return  # CONFIG is disabled on some hosted Redis; nothing to check then
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
                    await self._requeue(entry)
            await self.client.delete(self.keys.worker(self.id))
        except REDIS_ERRORS as error:
            log.warning(
                "could not remove worker key %s (%s); it expires with its lease",
                self.keys.worker(self.id),
                error,
            )
        log.info("worker %s stopped after %d task(s)", self.id, self.processed)

    async def _requeue(self, entry: bytes) -> None:
        task_id, _ = self.keys.parse_entry(entry)
        if task_id is None:
            return
        key = self.keys.task(task_id)
        await self.scripts.recover(
            keys=[key, self.keys.executing, self.keys.pending, self.keys.worker(self.id)],
            args=[entry, self.id, self.options.max_claims + 1, now_iso(), self.keys.results, key],
        )

    async def _drain(self) -> None:
        while self._running and not self._forced.is_set():
            assert self._wakeup is not None
            self._wakeup.clear()
            done, _ = await asyncio.wait(
                [*self._running, asyncio.create_task(self._wakeup.wait())],
                return_when=asyncio.FIRST_COMPLETED,
            )
            for job in done:
                if job not in self._running:
                    job.cancel()

    # -- background: lease and recovery -----------------------------------------------------

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
                    log.warning(
                        "worker key %s had expired (the worker was stalled or Redis lost "
                        "it); its tasks may run elsewhere too",
                        key,
                    )
                    await self._register()
            except REDIS_ERRORS as error:
                log.warning("heartbeat failed (%s); retrying", error)

    async def _reap_loop(self) -> None:
        while True:
            await asyncio.sleep(self.options.reap_ms / 1000 * random.uniform(0.8, 1.2))
            try:
                await self.reaper.sweep()
            except REDIS_ERRORS as error:
                log.warning("recovery sweep failed (%s); retrying", error)

    # -- claiming and running ---------------------------------------------------------------

    async def _claim_loop(self) -> None:
        slots = asyncio.Semaphore(self.options.concurrency)
        delay = 0.1
        while await self._free_slot(slots):
            try:
                entry = await self.blocking.blmove(
                    self.keys.pending, self.keys.executing,
                    cast(int, self.options.block_seconds),  # BLMOVE takes fractions of a second
                    "RIGHT", "LEFT",
                )  # fmt: skip
                delay = 0.1
            except REDIS_ERRORS as error:
                slots.release()
                log.warning(
                    "cannot claim from %s (%s); retrying in %.1f s", self.keys.pending, error, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if entry is None:
                slots.release()
                continue
            claimed = cast(bytes, entry)
            job = asyncio.create_task(self._process(claimed))
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

    async def _reject(self, entry: bytes, code: RejectCode, reason: str) -> None:
        log.warning("rejected entry %r of %s: %s (%s)", entry[:80], self.keys.pending, reason, code)
        await self.scripts.reject(
            keys=[self.keys.executing, self.keys.rejected],
            args=[entry, rejection(entry, code, reason, self.id), DEFAULT_REJECTED_MAX],
        )

    async def _process(self, entry: bytes) -> None:
        self._crash_point("claimed")
        task_id, problem = self.keys.parse_entry(entry)
        if task_id is None:
            await self._reject(entry, RejectCode.INVALID_ID, problem)
            return
        key = self.keys.task(task_id)
        try:
            reply: list[Any] = await self.scripts.start(
                keys=[key, self.keys.executing],
                args=[entry, self.id, now_iso(), self.options.max_value_bytes,
                      self.options.max_fields],
            )  # fmt: skip
        except REDIS_ERRORS as error:
            log.warning("the reply to start of %s was lost (%s); reading the hash", task_id, error)
            owned = await self._after_lost_start(key)
            if owned is None:
                return
            reply = owned
        self._crash_point("started")
        status = reply[0].decode()
        if status == "missing":
            await self._reject(entry, RejectCode.MISSING_HASH, f"{key} does not exist")
            return
        if status == "wrong-type":
            kind = reply[1].decode()
            await self._reject(entry, RejectCode.WRONG_TYPE, f"{key} is a {kind}, not a hash")
            return
        if status in ("lost", "duplicate"):
            log.info("skipped entry %s: %s", task_id,
                     "recovered by another worker" if status == "lost"
                     else f"the task is already {reply[1].decode()}")  # fmt: skip
            return
        claims = int(reply[1])
        if status == "too-large":
            fields = failure_fields(
                Failure(ErrorCode.TOO_LARGE, reply[2].decode("utf-8", "replace"))
            )
        elif status == "invalid-state":
            state = reply[2].decode("utf-8", "replace")
            fields = failure_fields(
                Failure(
                    ErrorCode.INVALID_STATE,
                    f"state was {state!r}; a queued task has state pending (or none)",
                )
            )
        else:
            flat = reply[2]
            prepared = prepare(dict(zip(flat[::2], flat[1::2], strict=True)), self.registry)
            if isinstance(prepared, Failure):
                fields = failure_fields(prepared)
            else:
                fields = await self._run(prepared)
        self._crash_point("ran")
        await self._finish(entry, task_id, claims, fields)
        self._crash_point("finished")

    async def _after_lost_start(self, key: str) -> list[Any] | None:
        """SPEC.md 5.3: never call start twice; if start ran for this worker, rebuild its reply."""
        delay = 0.1
        while not self._forced.is_set():
            try:
                state, worker, claims = await self.client.hmget(key, "state", "worker", "claims")
                if state != b"executing" or worker != self.id.encode() or claims is None:
                    return None  # start did not run for this worker: the reaper handles the entry
                count = await self.client.hlen(key)
                if count > self.options.max_fields:
                    return [b"too-large", claims, f"the hash has {count} fields".encode()]
                pipe = self.client.pipeline(transaction=False)
                names = await self.client.hkeys(key)
                for name in names:
                    pipe.hstrlen(key, name)
                for name, size in zip(names, await pipe.execute(), strict=True):
                    if max(size, len(name)) > self.options.max_value_bytes:
                        return [b"too-large", claims, f"field {name[:64]!r} holds {size} bytes"
                                .encode()]  # fmt: skip
                fields = cast(dict[bytes, bytes], await self.client.hgetall(key))
                return [b"ok", claims, [item for pair in fields.items() for item in pair]]
            except REDIS_ERRORS as error:
                log.warning("cannot read %s (%s); retrying", key, error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        return None

    async def _run(self, call: Call) -> list[str]:
        try:
            if call.is_async:
                value = await call.function(**call.args)
            else:
                assert self._loop is not None
                value = await self._loop.run_in_executor(
                    self.executor, functools.partial(call.function, **call.args)
                )
        except (Exception, SystemExit) as error:
            log.debug("%s raised %r", call.name, error)
            return failure_fields(Failure.from_exception(error))
        return success_fields(value)

    async def _finish(self, entry: bytes, task_id: str, claims: int, fields: list[str]) -> None:
        key = self.keys.task(task_id)
        delay = 0.1
        for _ in range(60):
            try:
                written = await self.scripts.finish(
                    keys=[key, self.keys.executing],
                    args=[entry, self.id, claims, self.keys.results, key, *fields],
                )
                break
            except REDIS_ERRORS as error:
                log.warning("cannot record the outcome of %s (%s); retrying", task_id, error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        else:
            log.error(
                "gave up recording the outcome of %s; it will be recovered and run again", task_id
            )
            return
        self.processed += 1
        if written == 0:
            log.warning(
                "outcome of %s discarded: the task was recovered while this worker ran it "
                "(its lease had expired)",
                task_id,
            )
