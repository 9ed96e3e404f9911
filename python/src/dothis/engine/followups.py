"""What happens after a task ends: its callback task, and the release of tasks waiting for it.

finish.lua (and recover.lua, cancel.lua, release.lua) add the id of an ended task that has an
on-success / on-failure callback or dependents to ``<queue>:releasing``. ``run_followups`` does
the work and then removes the id; every step is idempotent (the callback has a deterministic id
and enqueue.lua refuses an existing one; release.lua removes the child from the parent's set
first), so the worker that finished the task and any reaper may both run it.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from dothis.engine.flow import Flow
from dothis.store.ops import Ops
from dothis.store.replies import Enqueued, Released
from dothis.wire import codec
from dothis.wire.clock import now_iso, now_ms
from dothis.wire.protocol import PARENT_VANISHED, Field, Outcome, State

log = logging.getLogger("dothis.followups")

DRAIN_BATCH = 100
WAITING_BATCH = 100
RECHECK_MS = 60_000


def callback_id(task_id: str) -> str:
    """The id of a task's callback: deterministic, so it is enqueued at most once."""
    return "cb-" + hashlib.sha1(task_id.encode()).hexdigest()


def callback_call(task_id: str, fields: dict[str, str]) -> tuple[str, dict[str, Any]] | None:
    """(function, args) of the callback an ended task asks for, or None (SPEC.md 5.13)."""
    outcome = fields.get(Field.RESULT)
    succeeded = outcome == Outcome.SUCCESSFUL
    function = fields.get(Field.ON_SUCCESS if succeeded else Field.ON_FAILURE)
    if not function:
        return None
    value: Any = None
    if succeeded:
        try:
            value = codec.decode(fields.get(Field.RESULT_VALUE, "null"))
        except ValueError:
            value = None
    error = None if succeeded else {"code": fields.get(Field.ERROR_CODE, ""),
                                    "reason": fields.get(Field.ERROR_REASON, "")}  # fmt: skip
    return function, {"id": task_id, "outcome": outcome, "value": value, "error": error}


def run_followups(
    task_id: str, ops: Ops, failure_ttl: int, into_executing: bool = False
) -> Flow[list[str]]:
    """The follow-ups of ``task_id`` and of every task it made fail, then forget them. Returns the
    ids it queued (callbacks, released children); ``into_executing`` queues them claimed, for
    eager mode to run."""
    queued: list[str] = []
    todo = [task_id]
    while todo:
        current = todo.pop()
        raw = yield ops.read_task(current)
        fields = {k.decode(): v.decode("utf-8", "replace") for k, v in raw.items()}
        outcome = fields.get(Field.RESULT)
        if fields.get(Field.STATE) == State.FINISHED and outcome:
            call = callback_call(current, fields)
            if call is not None:
                child = callback_id(current)
                created = yield ops.enqueue(child, "back", [], [
                    Field.FUNCTION, call[0], Field.STATE, State.PENDING,
                    Field.ARGS, codec.encode(call[1]), Field.PENDING_CREATED, now_iso(),
                    Field.CALLBACK_OF, current,
                ], replace=False, into_executing=into_executing)  # fmt: skip
                if created is Enqueued.CREATED:
                    log.debug("enqueued %s callback %s of %s", call[0], child, current)
                    queued.append(child)
            released, failed = yield from _release_children(current, outcome, ops, failure_ttl,
                                                            into_executing)  # fmt: skip
            queued += released
            todo += failed
        elif not raw:  # its hash is gone: it vanished, and its dependents must not wait forever
            _, failed = yield from _release_children(current, PARENT_VANISHED, ops, failure_ttl,
                                                     into_executing)  # fmt: skip
            todo += failed
        yield ops.followups_done(current)
    return queued


def _release_children(
    task_id: str, outcome: str, ops: Ops, failure_ttl: int, into_executing: bool
) -> Flow[tuple[list[str], list[str]]]:
    """Tell each waiting child; (ids now queued, ids this made fail: their turn next)."""
    queued: list[str] = []
    failed: list[str] = []
    for raw in (yield ops.dependents(task_id)):
        child, _ = ops.keys.parse_entry(raw)
        if child is None:
            yield ops.drop_dependent(task_id, raw)
            continue
        released = yield ops.release(child, task_id, outcome, failure_ttl,
                                     into_executing=into_executing)  # fmt: skip
        if released is Released.READY:
            queued.append(child)
        elif released is Released.FAILED:
            failed.append(child)
    return queued, failed


def drain_followups(ops: Ops, failure_ttl: int) -> Flow[int]:
    """Run the follow-ups left in <queue>:releasing (a worker died before it ran them)."""
    ids = yield ops.followups_due(DRAIN_BATCH)
    for raw in ids:
        task_id, _ = ops.keys.parse_entry(raw)
        if task_id is None:
            yield ops.followups_done(raw)
        else:
            yield from run_followups(task_id, ops, failure_ttl)
    return len(ids)


def check_waiting(ops: Ops, failure_ttl: int) -> Flow[int]:
    """The parents check (SPEC.md 5.13): waiting tasks due for a check whose parent's hash is gone
    fail with dependency-failed; the others are checked again later. Returns how many failed.

    Every task still waiting is given its next check first, then the vanished parents are
    released: whoever sees a failure of this pass sees the others' next checks already set."""
    ids = yield ops.waiting_due(now_ms(), WAITING_BATCH)
    vanished: list[tuple[str, list[str]]] = []
    for raw in ids:
        child, _ = ops.keys.parse_entry(raw)
        state, depends_on = (None, None) if child is None else (yield ops.waiting_parents(child))
        if child is None or state != State.WAITING.encode():
            yield ops.unindex_waiting(raw)
            continue
        yield ops.check_waiting_later(child, now_ms() + RECHECK_MS)
        missing = []
        for parent in _parents(depends_on):
            if not (yield ops.task_exists(parent)):
                missing.append(parent)
        if missing:
            vanished.append((child, missing))
    failed: list[str] = []
    for child, missing in vanished:
        for parent in missing:
            released = yield ops.release(child, parent, PARENT_VANISHED, failure_ttl,
                                         into_executing=False)  # fmt: skip
            if released is Released.FAILED:
                log.warning("task %s failed: task %s it depends on vanished", child, parent)
                failed.append(child)
                break
    for child in failed:  # its own dependents and callback
        yield from run_followups(child, ops, failure_ttl)
    return len(failed)


def _parents(depends_on: bytes | None) -> list[str]:
    try:
        parents = codec.decode(depends_on.decode()) if depends_on else []
    except (ValueError, UnicodeDecodeError):
        return []
    return (
        [parent for parent in parents if isinstance(parent, str)]
        if isinstance(parents, list)
        else []
    )
