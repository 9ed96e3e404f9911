"""One claimed entry, from start.lua to its outcome: finish.lua, or retry.lua for another try."""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import redis

from dothis import codec
from dothis.batching import Batcher
from dothis.execution import (
    Call,
    Failure,
    failure_fields,
    prepare,
    success_fields,
    unserializable,
)
from dothis.followups import Followups
from dothis.pool import ChildCrashed, ProcessPool, Reply, Retry, run_call
from dothis.protocol import (
    DEFAULT_REJECTED_MAX,
    ErrorCode,
    Field,
    Keys,
    RejectCode,
    State,
    iso_from_ms,
    now_iso,
    now_ms,
)
from dothis.protocol import Outcome as Result
from dothis.reaper import rejection
from dothis.registry import Registry
from dothis.scripts import Scripts

if TYPE_CHECKING:
    from dothis.worker import WorkerOptions

log = logging.getLogger("dothis.worker")

REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)
RETRYABLE = (ErrorCode.EXCEPTION, ErrorCode.TIMEOUT, ErrorCode.CRASHED)


@dataclass(frozen=True)
class Outcome:
    """The fields to write, and whether they end the task or schedule another try."""

    fields: list[str]
    retry_due_ms: int | None = None
    failed: bool = False


def final(failure: Failure, result: Result = Result.FAILED) -> Outcome:
    return Outcome(failure_fields(failure, result), failed=True)


def _expired(fields: dict[bytes, bytes]) -> Failure | None:
    """The expired failure of a task that waited longer than its ttl to start, else None."""
    ttl, created = fields.get(b"ttl"), fields.get(b"pending-created")
    if ttl is None or created is None or not ttl.isdigit():
        return None
    try:
        since = datetime.strptime(created.decode(), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return None
    waited = (datetime.now(UTC) - since).total_seconds()
    if waited <= int(ttl):
        return None
    return Failure(ErrorCode.EXPIRED, f"waited {waited:.1f} s to start; its ttl is {int(ttl)} s")


async def _run_async(call: Call) -> Reply:
    try:
        value = await call.function(**call.args)
    except Retry as request:
        return Reply("retry", request.reason, "", request.delay)
    except Exception as error:
        return Failure.from_exception(error).as_reply()
    try:
        return Reply("ok", codec.encode(value))
    except (TypeError, ValueError) as error:
        return Reply("unserializable", str(error), type(value).__name__)


class Runner:
    def __init__(
        self,
        client: Any,
        scripts: Scripts,
        keys: Keys,
        worker_id: str,
        options: WorkerOptions,
        registry: Registry,
        pool: ProcessPool | None,
        executor: ThreadPoolExecutor | None,
        crash_point: Callable[[str], None],
        forced: threading.Event,
    ) -> None:
        self.client = client
        self.scripts = scripts
        self.keys = keys
        self.id = worker_id
        self.options = options
        self.registry = registry
        self.pool = pool
        self.executor = executor
        self.crash_point = crash_point
        self.forced = forced
        self.processed = 0
        self.followups = Followups(client, scripts, keys, options.failure_ttl)
        self.cancels: dict[str, asyncio.Event] = {}
        self.batch = Batcher(client)
        self.running = asyncio.Semaphore(options.concurrency)

    async def reject(self, entry: bytes, code: RejectCode, reason: str) -> None:
        log.warning("rejected entry %r of %s: %s (%s)", entry[:80], self.keys.pending, reason, code)
        await self.scripts.reject(
            keys=[self.keys.executing, self.keys.rejected],
            args=[entry, rejection(entry, code, reason, self.id), DEFAULT_REJECTED_MAX],
        )

    async def process(self, entry: bytes) -> None:
        self.crash_point("claimed")
        task_id, problem = self.keys.parse_entry(entry)
        if task_id is None:
            await self.reject(entry, RejectCode.INVALID_ID, problem)
            return
        key = self.keys.task(task_id)
        try:
            reply: list[Any] = await self.batch.call(
                self.scripts.start,
                [key, self.keys.executing],
                [entry, self.id, now_iso(), self.options.max_value_bytes, self.options.max_fields],
            )
        except REDIS_ERRORS as error:
            log.warning("the reply to start of %s was lost (%s); reading the hash", task_id, error)
            owned = await self._after_lost_start(key)
            if owned is None:
                return
            reply = owned
        self.crash_point("started")
        status = reply[0].decode()
        if status == "missing":
            await self.reject(entry, RejectCode.MISSING_HASH, f"{key} does not exist")
            return
        if status == "wrong-type":
            kind = reply[1].decode()
            await self.reject(entry, RejectCode.WRONG_TYPE, f"{key} is a {kind}, not a hash")
            return
        if status in ("lost", "duplicate"):
            log.info("skipped entry %s: %s", task_id,
                     "recovered by another worker" if status == "lost"
                     else f"the task is already {reply[1].decode()}")  # fmt: skip
            return
        claims = int(reply[1])
        fields: dict[bytes, bytes] = {}
        if status == "too-large":
            outcome = final(Failure(ErrorCode.TOO_LARGE, reply[2].decode("utf-8", "replace")))
        elif status == "invalid-state":
            state = reply[2].decode("utf-8", "replace")
            outcome = final(Failure(
                ErrorCode.INVALID_STATE,
                f"state was {state!r}; a queued task has state pending (or none)"))  # fmt: skip
        else:
            flat = reply[2]
            fields = dict(zip(flat[::2], flat[1::2], strict=True))
            outcome = await self._outcome(task_id, fields)
        self.crash_point("ran")
        await self._record(entry, task_id, claims, outcome, fields)
        self.crash_point("finished")

    async def _outcome(self, task_id: str, fields: dict[bytes, bytes]) -> Outcome:
        if b"cancel-requested" in fields:
            return final(Failure(ErrorCode.CANCELLED, "cancelled before it started"),
                         Result.CANCELLED)  # fmt: skip
        expired = _expired(fields)
        if expired is not None:
            return final(expired, Result.EXPIRED)
        prepared = prepare(fields, self.registry)
        if isinstance(prepared, Failure):
            return final(prepared)
        cancel = self.cancels.setdefault(task_id, asyncio.Event())
        try:
            return await self._attempt(prepared, cancel)
        finally:
            self.cancels.pop(task_id, None)

    async def _after_lost_start(self, key: str) -> list[Any] | None:
        """SPEC.md 5.3: never call start twice; if start ran for this worker, rebuild its reply."""
        delay = 0.1
        while not self.forced.is_set():
            try:
                state, worker, claims = await self.client.hmget(key, "state", "worker", "claims")
                if state != b"executing" or worker != self.id.encode() or claims is None:
                    return None  # start did not run for this worker: the reaper handles the entry
                count = await self.client.hlen(key)
                if count > self.options.max_fields:
                    return [b"too-large", claims, f"the hash has {count} fields".encode()]
                names = await self.client.hkeys(key)
                pipe = self.client.pipeline(transaction=False)
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

    async def _invoke(self, call: Call, timeout: float | None) -> Reply:
        if call.is_async:
            async with self.running:
                return await asyncio.wait_for(_run_async(call), timeout)
        if self.pool is not None:
            return await self.pool.run(call.name, call.args, timeout)
        if self.executor is None:  # pool "inline": on the event loop, for short functions
            return run_call(call.function, call.args)
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.executor, run_call, call.function, call.args)
        return await asyncio.wait_for(future, timeout)

    async def _attempt(self, call: Call, cancel: asyncio.Event) -> Outcome:
        timeout = call.timeout if call.timeout is not None else self.options.timeout
        running = asyncio.ensure_future(self._invoke(call, timeout))
        cancelled = asyncio.ensure_future(cancel.wait())
        await asyncio.wait({running, cancelled}, return_when=asyncio.FIRST_COMPLETED)
        cancelled.cancel()
        if not running.done():
            running.cancel()  # a child process is killed; a thread runs on, its result ignored
            with suppress(asyncio.CancelledError, TimeoutError, ChildCrashed):
                await running
            return final(Failure(ErrorCode.CANCELLED, f"{call.name} was cancelled while it ran"),
                         Result.CANCELLED)  # fmt: skip
        try:
            reply = running.result()
        except TimeoutError:
            return self._retry_or_fail(call, Failure(
                ErrorCode.TIMEOUT, f"{call.name} ran longer than its {timeout} s timeout and "
                "was stopped"))  # fmt: skip
        except ChildCrashed as error:
            return self._retry_or_fail(call, Failure(ErrorCode.CRASHED, str(error)))
        if reply.kind == "ok":
            return Outcome(success_fields(reply.value))
        if reply.kind == "unserializable":
            return final(unserializable(reply.detail, reply.value))
        if reply.kind == "retry":
            return self._retry_or_fail(call, Failure(ErrorCode.EXCEPTION, reply.value),
                                       delay=reply.delay, requested=True)  # fmt: skip
        return self._retry_or_fail(call, Failure(ErrorCode.EXCEPTION, reply.value, reply.detail))

    def backoff_ms(self, retries: int) -> int:
        """Exponential backoff with equal jitter: half fixed, half random."""
        ceiling = min(self.options.retry_max_ms, self.options.retry_base_ms * 2 ** min(retries, 30))
        return int(ceiling * random.uniform(0.5, 1.0))

    def _retry_or_fail(
        self, call: Call, failure: Failure, delay: float | None = None, requested: bool = False
    ) -> Outcome:
        if failure.code in RETRYABLE and call.retries + 1 < call.attempts:
            wait = self.backoff_ms(call.retries) if delay is None else int(delay * 1000)
            due = now_ms() + max(wait, 0)
            return Outcome([
                Field.STATE, State.SCHEDULED,
                Field.RETRIES, str(call.retries + 1),
                Field.SCHEDULED_FOR, iso_from_ms(due),
                Field.ERROR_CODE, failure.code,
                Field.ERROR_REASON, failure.reason,
                Field.ERROR_EXCEPTION, failure.exception,
            ], retry_due_ms=due)  # fmt: skip
        if requested:
            failure = Failure(ErrorCode.EXCEPTION, f"retry requested after the last of "
                              f"{call.attempts} attempt(s): {failure.reason}")  # fmt: skip
        return final(failure)

    def _keep(self, fields: dict[bytes, bytes], failed: bool) -> tuple[int, int]:
        """(seconds to keep the hash, 0 = kept; registry entries older than this ms drop)."""
        default = self.options.failure_ttl if failed else self.options.result_ttl
        own = fields.get(b"failure-ttl" if failed else b"result-ttl")
        seconds = int(own) if own is not None and own.lstrip(b"-").isdigit() else default
        horizon = now_ms() - default * 1000 if default > 0 else 0
        return max(seconds, 0), horizon

    async def _record(
        self,
        entry: bytes,
        task_id: str,
        claims: int,
        outcome: Outcome,
        fields: dict[bytes, bytes],
    ) -> None:
        key = self.keys.task(task_id)
        delay = 0.1
        for _ in range(60):
            try:
                if outcome.retry_due_ms is not None:
                    written = await self.batch.call(
                        self.scripts.retry,
                        [key, self.keys.executing, self.keys.scheduled],
                        [entry, self.id, claims, outcome.retry_due_ms, *outcome.fields],
                    )
                else:
                    keep, horizon = self._keep(fields, outcome.failed)
                    written = await self.batch.call(
                        self.scripts.finish,
                        [key, self.keys.executing, self.keys.failed, self.keys.succeeded,
                         self.keys.dependents(task_id), self.keys.releasing],
                        [entry, self.id, claims, self.keys.results, key, task_id, now_ms(),
                         "failed" if outcome.failed else "succeeded", keep, horizon,
                         *outcome.fields],
                    )  # fmt: skip
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
        if written == 2:
            try:
                await self.followups.run(task_id)
            except REDIS_ERRORS as error:  # the id stays in <queue>:releasing for a reaper
                log.warning("follow-ups of %s deferred (%s)", task_id, error)
        if written == 0:
            log.warning(
                "outcome of %s discarded: the task was recovered while this worker ran it "
                "(its lease had expired)",
                task_id,
            )
