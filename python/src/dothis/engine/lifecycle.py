"""One claimed entry, from start.lua to its outcome, written once for every consumer.

``process`` is the whole handling a worker gives an entry; ``begin`` (start and every check before
the function runs) and ``conclude`` (the decision and its record) are its halves, which the retask
consumer uses around the function its user runs.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dothis.engine import decide
from dothis.engine.checks import Invocation, prepare
from dothis.engine.context import TaskContext
from dothis.engine.events import Kind, Observer, TaskEvent
from dothis.engine.flow import Flow, RunTry, Sleep, Step
from dothis.engine.followups import run_followups
from dothis.engine.registry import Registry
from dothis.engine.tries import TryResult
from dothis.store.connection import REDIS_ERRORS, REDIS_OR_REPLY_ERRORS
from dothis.store.faults import report
from dothis.store.ops import Limits, Ops, ScriptCall
from dothis.store.replies import (
    Finished,
    Refused,
    Rejected,
    Rescheduled,
    Skipped,
    Started,
    StartReply,
)
from dothis.wire import checks
from dothis.wire.clock import now_ms
from dothis.wire.protocol import (
    DEFAULT_FAILURE_TTL,
    DEFAULT_MAX_FIELDS,
    DEFAULT_MAX_VALUE_BYTES,
    DEFAULT_RESULT_TTL,
    ErrorCode,
    Field,
    RejectCode,
)
from dothis.wire.records import Claim, Ending, Failure, NextTry, rejection_record

log = logging.getLogger("dothis.worker")

RECORD_TRIES = 60
FIRST_DELAY = 0.1


@dataclass
class Context:
    """What the flows need to know about the consumer running them."""

    ops: Ops
    worker_id: str
    registry: Registry | None
    limits: Limits
    policy: decide.RetryPolicy
    result_ttl: int
    failure_ttl: int
    # Eager mode: retries run here and now, follow-ups go straight into executing.
    in_place: bool = False
    stopping: Callable[[], bool] = lambda: False
    # Task leases (SPEC.md 9.2): their length, and what to tell the heartbeat when this consumer
    # starts holding a task and when it lets go of it (recorded, or given up).
    lease_ms: int | None = None
    hold: Callable[[Claim], None] = lambda claim: None
    release: Callable[[Claim], None] = lambda claim: None
    # Yield a Step at each point of a task's handling (a crash point is armed: crash tests).
    steps: bool = False
    # Who hears of each step (SPEC-independent: logs, metrics, traces); see engine/events.py.
    observe: Observer = lambda event: None
    # Counted as outcomes are recorded (and as records are fenced off), for counts and logs.
    processed: int = 0
    fenced: int = 0

    @classmethod
    def with_defaults(
        cls, ops: Ops, worker_id: str, registry: Registry | None, *, in_place: bool = False
    ) -> Context:
        """A context with the protocol's default limits, backoff and TTLs (eager mode, retask)."""
        return cls(ops, worker_id, registry, Limits(DEFAULT_MAX_VALUE_BYTES, DEFAULT_MAX_FIELDS),
                   decide.RetryPolicy(), DEFAULT_RESULT_TTL, DEFAULT_FAILURE_TTL,
                   in_place=in_place)  # fmt: skip


@dataclass(frozen=True)
class Begun:
    """A task this consumer owns and may run."""

    claim: Claim
    fields: checks.Fields
    invocation: Invocation
    began: float = 0.0  # monotonic, as the try began


def process(entry: bytes, ctx: Context, taken: StartReply | None = None) -> Flow[list[str]]:
    """Start, run and record one entry; the ids of follow-up tasks it queued. ``taken``: what
    take.lua replied for the entry (it claimed and started it), when it did."""
    begun = yield from begin(entry, ctx, taken)
    if isinstance(begun, list):
        return begun
    result = yield RunTry(begun.invocation, begun.claim)
    return (yield from conclude(begun, result, ctx))


def begin(entry: bytes, ctx: Context, taken: StartReply | None = None) -> Flow[Begun | list[str]]:
    """start.lua (unless take.lua started the entry: ``taken``) and the checks before a try;
    Begun, or (the task needs no try) the follow-up ids of its ending."""
    ops = ctx.ops
    if taken is None and ctx.steps:  # claimed and started in one script: no point between
        yield Step("claimed")
    task_id, problem = ops.keys.parse_entry(entry)
    if task_id is None:
        yield from _reject(entry, RejectCode.INVALID_ID, problem, ctx)
        return []
    reply = taken if taken is not None else (yield from _start(entry, task_id, ctx))
    if ctx.steps:
        yield Step("started")
    if isinstance(reply, Rejected):
        yield from _reject(entry, reply.code, reply.reason, ctx)
        return []
    if isinstance(reply, Skipped):
        log.info("skipped entry %s: %s", task_id, reply.reason)
        return []
    claim = Claim(entry, task_id, ctx.worker_id, reply.claims)
    ctx.hold(claim)
    if isinstance(reply, Refused):
        return (yield from _end(claim, Failure(reply.code, reply.detail), {}, ctx))
    assert isinstance(reply, Started)
    fields = reply.fields
    if b"cancel-requested" in fields:
        stop = Failure(ErrorCode.CANCELLED, "cancelled before it started")
        return (yield from _end(claim, stop, fields, ctx))
    expired = checks.expired(fields)
    if expired is not None:
        return (yield from _end(claim, expired, fields, ctx))
    prepared = prepare(fields, ctx.registry)
    if isinstance(prepared, Failure):
        return (yield from _end(claim, prepared, fields, ctx))
    settings = prepared.settings
    task = TaskContext.of(task_id, ops.keys.queue, prepared.name, settings.retries + 1,
                          settings.attempts, ctx.worker_id, claim.claims, fields)  # fmt: skip
    ctx.observe(TaskEvent(Kind.STARTED, ops.keys.queue, task_id, ctx.worker_id, prepared.name,
                          settings.retries + 1, settings.attempts, fields=fields))  # fmt: skip
    invocation = Invocation(prepared.name, prepared.function, prepared.args, prepared.is_async,
                            prepared.settings, task, prepared.middleware)  # fmt: skip
    return Begun(claim, fields, invocation, time.monotonic())


def _start(entry: bytes, task_id: str, ctx: Context) -> Flow[StartReply]:
    try:
        reply: StartReply = yield ctx.ops.start(entry, task_id, ctx.worker_id, ctx.limits,
                                                ctx.lease_ms)  # fmt: skip
    except REDIS_ERRORS as error:
        log.warning("the reply to start of %s was lost (%s); reading the hash", task_id, error)
        reply = yield from _after_lost_start(task_id, ctx)
    except REDIS_OR_REPLY_ERRORS as error:  # refused (an ACL rule, OOM): a fault, not the task's
        report(log, error, "cannot start %s", task_id)  # one line per fault episode
        reply = yield from _after_lost_start(task_id, ctx)
    return reply


def conclude(begun: Begun, result: TryResult, ctx: Context) -> Flow[list[str]]:
    """Decide what follows a try and record it; the ids of follow-up tasks it queued."""
    invocation = begun.invocation
    while True:
        decision = decide.decide(result, invocation.name, invocation.settings, ctx.policy,
                                 now_ms(), random.uniform(0.5, 1.0))  # fmt: skip
        if not (ctx.in_place and isinstance(decision, NextTry)):
            break
        yield Sleep(max(decision.due_ms - now_ms(), 0) / 1000)
        invocation = invocation.next_try()
        result = yield RunTry(invocation, begun.claim)
    if isinstance(decision, Ending) and invocation is not begun.invocation:
        decision = Ending(
            decision.outcome, [*decision.fields, Field.RETRIES, str(invocation.settings.retries)]
        )
    if ctx.steps:
        yield Step("ran")
    seconds = time.monotonic() - begun.began if begun.began else None
    try_number = invocation.settings.retries + 1
    queued = yield from record(begun.claim, decision, begun.fields, ctx,
                               try_number=try_number, seconds=seconds)  # fmt: skip
    if ctx.steps:
        yield Step("finished")
    return queued


def _end(claim: Claim, failure: Failure, fields: checks.Fields, ctx: Context) -> Flow[list[str]]:
    if ctx.steps:
        yield Step("ran")
    queued = yield from record(claim, decide.before_start(failure, now_ms()), fields, ctx)
    if ctx.steps:
        yield Step("finished")
    return queued


def record(
    claim: Claim,
    decision: decide.Decision,
    fields: checks.Fields,
    ctx: Context,
    *,
    try_number: int | None = None,
    seconds: float | None = None,
) -> Flow[list[str]]:
    """finish.lua or retry.lua, retried through outages; then the follow-ups it made due."""
    ops = ctx.ops
    request: ScriptCall[Any]
    if isinstance(decision, NextTry):
        request = ops.retry(claim, decision)
    else:
        default = ctx.failure_ttl if decision.failed else ctx.result_ttl
        keep = checks.keep_seconds(fields, decision.failed, default)
        horizon = now_ms() - default * 1000 if default > 0 else 0
        request = ops.finish(claim, decision, keep, horizon)
    try:
        written = yield from _write(request, claim.task_id)
    finally:
        ctx.release(claim)  # recorded, or given up: its lease runs out and a reaper recovers it
    if written is None:  # gave up: a reaper recovers the task when its lease runs out
        function = fields.get(b"function", b"").decode("utf-8", "replace") or None
        ctx.observe(TaskEvent(Kind.DISCARDED, ctx.ops.keys.queue, claim.task_id, ctx.worker_id,
                              function, try_number, seconds=seconds,
                              reason="the outcome could not be recorded"))  # fmt: skip
        return []
    ctx.processed += 1
    ctx.observe(_recorded(claim, decision, written, fields, ctx, try_number, seconds))
    if written in (Finished.FENCED, Rescheduled.FENCED):
        ctx.fenced += 1
        log.warning("outcome of %s discarded: the task was recovered while this worker ran it "
                    "(its lease had expired)", claim.task_id)  # fmt: skip
    if written in (Finished.GONE, Rescheduled.GONE):
        log.warning("outcome of %s dropped: its hash is gone (deleted, or Redis restarted without "
                    "its data: SPEC.md 4.4)", claim.task_id)  # fmt: skip
    if written is not Finished.FOLLOWUPS_DUE:
        return []
    try:
        return (yield from run_followups(claim.task_id, ops, ctx.failure_ttl, ctx.in_place))
    except REDIS_ERRORS as error:  # the id stays in <queue>:releasing for a reaper
        log.warning("follow-ups of %s deferred (%s)", claim.task_id, error)
        return []


def _write(request: ScriptCall[Any], task_id: str) -> Flow[Any]:
    """Send the outcome's script call, retried through outages and refusals for about two
    minutes (SPEC.md 9.3); None when it gave up."""
    delay = FIRST_DELAY
    for _ in range(RECORD_TRIES):
        try:
            written = yield request
            break
        except REDIS_OR_REPLY_ERRORS as error:  # a refusal (a key of the wrong type, OOM) too
            if delay == FIRST_DELAY:  # one line per fault episode, not per task and retry
                report(log, error, "cannot record the outcome of %s", task_id)
            yield Sleep(delay)
            delay = min(delay * 2, 2.0)
    else:
        log.error("gave up recording the outcome of %s; it goes back to pending when its lease "
                  "runs out", task_id)  # fmt: skip
        return None
    return written


_KINDS = {"successful": Kind.SUCCEEDED, "cancelled": Kind.CANCELLED, "expired": Kind.EXPIRED}


def _recorded(
    claim: Claim,
    decision: decide.Decision,
    written: Any,
    fields: checks.Fields,
    ctx: Context,
    try_number: int | None,
    seconds: float | None,
) -> TaskEvent:
    """The event of an outcome recorded (or fenced off, or dropped because the hash is gone)."""
    pairs = iter(decision.fields)
    written_fields = dict(zip(pairs, pairs, strict=False))
    function = fields.get(b"function", b"").decode("utf-8", "replace") or None
    if written in (Finished.FENCED, Rescheduled.FENCED, Finished.GONE, Rescheduled.GONE):
        kind, delay = Kind.DISCARDED, None
    elif isinstance(decision, NextTry):
        kind, delay = Kind.RETRIED, max(decision.due_ms - now_ms(), 0) / 1000
    else:
        kind, delay = _KINDS.get(decision.outcome, Kind.FAILED), None
    return TaskEvent(kind, ctx.ops.keys.queue, claim.task_id, ctx.worker_id, function,
                     try_number, None, seconds, written_fields.get(Field.ERROR_CODE),
                     written_fields.get(Field.ERROR_REASON),
                     written_fields.get(Field.ERROR_EXCEPTION) or None, delay,
                     fields)  # fmt: skip


def _reject(entry: bytes, code: RejectCode, reason: str, ctx: Context) -> Flow[None]:
    log.warning("rejected entry %r of %s: %s (%s)", entry[:80], ctx.ops.keys.pending, reason, code)
    task_id = entry.decode("utf-8", "replace")[:200]
    ctx.observe(TaskEvent(Kind.REJECTED, ctx.ops.keys.queue, task_id, ctx.worker_id, code=code,
                          reason=reason))  # fmt: skip
    yield ctx.ops.reject(entry, rejection_record(entry, code, reason, ctx.worker_id))


def _after_lost_start(task_id: str, ctx: Context) -> Flow[Started | Refused | Skipped]:
    """SPEC.md 5.3: never call start twice; if start ran for this worker, rebuild its reply."""
    delay = 0.1
    while not ctx.stopping():
        try:
            state, worker, claims, _ = yield ctx.ops.ownership(task_id)
            if state != b"executing" or worker != ctx.worker_id.encode() or claims is None:
                return Skipped("start did not run for this worker: the reaper handles the entry")
            fields = yield ctx.ops.read_task(task_id)
        except REDIS_OR_REPLY_ERRORS as error:
            log.warning("cannot read the hash of %s (%s); retrying", task_id, error)
            yield Sleep(delay)
            delay = min(delay * 2, 5.0)
            continue
        limits = ctx.limits
        if len(fields) > limits.max_fields:
            return Refused(int(claims), ErrorCode.TOO_LARGE, f"the hash has {len(fields)} fields")
        for name, value in fields.items():
            if max(len(name), len(value)) > limits.max_value_bytes:
                return Refused(int(claims), ErrorCode.TOO_LARGE,
                               f"field {name[:64]!r} holds {len(value)} bytes")  # fmt: skip
        return Started(int(claims), fields)
    return Skipped("the worker is stopping")
