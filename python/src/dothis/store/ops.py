"""The operations layer: the only code that names a Lua script, builds its KEYS and ARGV, or reads
its reply (schema/scripts.json is the manifest these follow).

Each method returns a request, a ``ScriptCall`` or a ``Command`` that carries its own reply parser;
an executor (``store.execute``: sync, or asyncio with batching) runs it and returns the typed reply.
Nothing here does I/O, so the same operations serve the worker, eager mode and the retask consumer,
and a unit test can answer them with a fake.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from dothis.store.replies import (
    Cancelled,
    Deleted,
    Enqueued,
    Finished,
    Fired,
    Recovered,
    Refused,
    Rejected,
    Released,
    Requeued,
    Rescheduled,
    Skipped,
    Started,
    StartReply,
    Taken,
    Unstarted,
)
from dothis.wire.clock import now_iso, now_ms
from dothis.wire.protocol import DEFAULT_REJECTED_MAX, ErrorCode, Keys, RejectCode
from dothis.wire.records import Claim, Ending, NextTry

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ScriptCall(Generic[T]):
    """One call of lua/<script>.lua and how to read its reply."""

    script: str
    keys: list[str]
    args: list[Any]
    parse: Callable[[Any], T]


@dataclass(frozen=True, slots=True)
class Command(Generic[T]):
    """One plain Redis command and how to read its reply."""

    args: tuple[Any, ...]
    parse: Callable[[Any], T]


Request = ScriptCall[Any] | Command[Any]


def _same(raw: Any) -> Any:
    return raw


def _hash(raw: Any) -> dict[bytes, bytes]:
    if isinstance(raw, dict):
        return cast(dict[bytes, bytes], raw)
    return dict(zip(raw[::2], raw[1::2], strict=True))


def _start_reply(raw: Any) -> StartReply:
    status = raw[0].decode()
    if status == "ok":
        return Started(int(raw[1]), _hash(raw[2]))
    if status in ("too-large", "invalid-state"):
        detail = raw[2].decode("utf-8", "replace")
        if status == "invalid-state":
            return Refused(
                int(raw[1]),
                ErrorCode.INVALID_STATE,
                f"state was {detail!r}; a queued task has state pending (or none)",
            )
        return Refused(int(raw[1]), ErrorCode.TOO_LARGE, detail)
    if status == "missing":
        return Rejected(RejectCode.MISSING_HASH, "the task hash does not exist")
    if status == "wrong-type":
        return Rejected(RejectCode.WRONG_TYPE, f"the task key is a {raw[1].decode()}, not a hash")
    if status == "lost":
        return Skipped("recovered by another worker")
    return Skipped(f"the task is already {raw[1].decode()}")


def _take_reply(raw: Any) -> list[Taken]:
    """take.lua's reply: one [entry, reply] per entry moved, the reply read as start.lua's."""
    taken = []
    for entry, reply in raw or []:
        if reply[0] == b"unstarted":
            taken.append(Taken(bytes(entry), Unstarted()))
        else:
            taken.append(Taken(bytes(entry), _start_reply(reply)))
    return taken


_ENQUEUED = {member.value: member for member in Enqueued}


def _enqueued(raw: Any) -> Enqueued:
    """enqueue.lua's reply (an integer, read once per task written)."""
    return _ENQUEUED.get(raw) or Enqueued(int(raw))


TAKE_MAX = 1000
"""The most entries one call of take.lua takes (SPEC.md 5.18)."""


def ttl_arg(seconds: int) -> str:
    """A default-TTL argument (SPEC.md 3.1): positive seconds, -1 to keep the hash, and anything
    else as 0, the protocol default."""
    return str(seconds) if seconds > 0 or seconds == -1 else "0"


@dataclass(frozen=True)
class Limits:
    """start.lua's size checks (SPEC.md 8.1)."""

    max_value_bytes: int
    max_fields: int


class Ops:
    """The operations of one queue."""

    def __init__(self, keys: Keys) -> None:
        self.keys = keys

    # -- producers --------------------------------------------------------------------------

    def enqueue(
        self,
        task_id: str,
        placement: str,
        parents: Sequence[str],
        fields: Sequence[str],
        *,
        replace: bool = True,
        into_executing: bool = False,
    ) -> ScriptCall[Enqueued]:
        """enqueue.lua; ``into_executing`` puts the entry straight into executing, claimed (eager
        mode: no other worker can take it)."""
        k = self.keys
        target = k.executing if into_executing else k.pending
        keys = [k.task(task_id), target, k.scheduled]
        if parents:
            for parent in parents:
                keys += [k.task(parent), k.dependents(parent)]
            keys.append(k.waiting)  # a task that waits joins the index (SPEC.md 5.13)
        args = [task_id, placement, "1" if replace else "0", str(len(parents)), *parents, *fields]
        return ScriptCall("enqueue", keys, args, _enqueued)

    def cancel(self, task_id: str, failure_ttl: int) -> ScriptCall[Cancelled]:
        k = self.keys
        key = k.task(task_id)
        return ScriptCall(
            "cancel",
            [key, k.pending, k.scheduled, k.failed, k.dependents(task_id), k.releasing, k.waiting],
            [task_id, now_iso(), now_ms(), k.results, key, ttl_arg(failure_ttl)],
            lambda raw: Cancelled(int(raw)),
        )

    def delete(self, task_id: str) -> ScriptCall[Deleted]:
        k = self.keys
        key = k.task(task_id)
        return ScriptCall(
            "delete",
            [key, k.pending, k.scheduled, k.waiting, k.failed, k.succeeded,
             k.dependents(task_id), k.releasing],
            [task_id, key],
            lambda raw: Deleted(int(raw)),
        )  # fmt: skip

    def requeue(self, task_id: str) -> ScriptCall[Requeued]:
        k = self.keys
        return ScriptCall("requeue", [k.task(task_id), k.failed, k.pending], [task_id],
                          lambda raw: Requeued(int(raw)))  # fmt: skip

    def fire(
        self, schedule: str, occurrence: int, task_id: str, fields: Sequence[str]
    ) -> ScriptCall[Fired]:
        k = self.keys
        return ScriptCall("fire", [k.periodic, k.task(task_id), k.pending],
                          [schedule, occurrence, task_id, *fields],
                          lambda raw: Fired(int(raw)))  # fmt: skip

    # -- a worker's claim ---------------------------------------------------------------------

    def start(
        self, entry: bytes, task_id: str, worker: str, limits: Limits, lease_ms: int | None = None
    ) -> ScriptCall[StartReply]:
        """start.lua; with ``lease_ms`` the task gets a lease of its own (SPEC.md 9.2)."""
        k = self.keys
        args: list[Any] = [entry, worker, now_iso(), limits.max_value_bytes, limits.max_fields]
        if lease_ms is not None:
            args.append(now_ms() + lease_ms)
        return ScriptCall("start", [k.task(task_id), k.executing], args, _start_reply)

    def take(
        self, worker: str, limits: Limits, count: int, lease_ms: int | None = None
    ) -> ScriptCall[list[Taken]]:
        """take.lua (SPEC.md 5.18): claim and start up to ``count`` entries (1 to ``TAKE_MAX``) in
        one call. Parses to a list of ``Taken(entry, reply)`` in claim order, empty when pending was
        empty; ``reply`` is what ``start`` parses to for that entry, or ``Unstarted()`` for an entry
        left claimed that the caller must reject or start at once. With ``lease_ms`` every task
        started gets a lease of its own (SPEC.md 9.2)."""
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= TAKE_MAX:
            raise ValueError(f"take count must be an integer from 1 to {TAKE_MAX}, not {count!r}")
        k = self.keys
        lease = "" if lease_ms is None else now_ms() + lease_ms
        args: list[Any] = [worker, now_iso(), limits.max_value_bytes, limits.max_fields, lease,
                           count, k.task_prefix]  # fmt: skip
        return ScriptCall("take", [k.pending, k.executing], args, _take_reply)

    def renew(self, claim: Claim, lease_ms: int) -> ScriptCall[bool]:
        """renew.lua: extend a held task's lease; False when the worker no longer holds it."""
        return ScriptCall("renew", [self.keys.task(claim.task_id)],
                          [claim.worker, claim.claims, now_ms() + lease_ms],
                          lambda raw: raw == 1)  # fmt: skip

    def progress(self, task_id: str, claims: int, worker: str, report: str) -> ScriptCall[bool]:
        """progress.lua (SPEC.md 5.16): False when the try no longer holds the task."""
        k = self.keys
        key = k.task(task_id)
        return ScriptCall("progress", [key], [claims, worker, report, k.progress, key],
                          lambda raw: raw == 1)  # fmt: skip

    def reject(self, entry: bytes, record: str) -> ScriptCall[bool]:
        k = self.keys
        return ScriptCall("reject", [k.executing, k.rejected],
                          [entry, record, DEFAULT_REJECTED_MAX], lambda raw: raw == 1)  # fmt: skip

    def finish(
        self, claim: Claim, ending: Ending, default_ttl: int, horizon_ms: int = 0
    ) -> ScriptCall[Finished]:
        """finish.lua: ``default_ttl`` applies unless the hash has its own result-/failure-ttl;
        registry entries older than ``horizon_ms`` (ms since the epoch; 0: none) are dropped."""
        k = self.keys
        key = k.task(claim.task_id)
        return ScriptCall(
            "finish",
            [key, k.executing, k.failed, k.succeeded, k.dependents(claim.task_id), k.releasing],
            [claim.entry, claim.worker, claim.claims, k.results, key, claim.task_id, now_ms(),
             "failed" if ending.failed else "succeeded", ttl_arg(default_ttl), horizon_ms,
             *ending.fields],
            lambda raw: Finished(int(raw)),
        )  # fmt: skip

    def retry(self, claim: Claim, next_try: NextTry) -> ScriptCall[Rescheduled]:
        k = self.keys
        return ScriptCall(
            "retry",
            [k.task(claim.task_id), k.executing, k.scheduled],
            [claim.entry, claim.worker, claim.claims, next_try.due_ms, *next_try.fields],
            lambda raw: Rescheduled(int(raw)),
        )

    def recover(
        self,
        entry: bytes,
        task_id: str,
        owner: str,
        max_claims: int,
        failure_ttl: int,
        *,
        lease_rule: bool = False,
    ) -> ScriptCall[Recovered]:
        """recover.lua: ``owner`` is the hash's worker ('' for an ownerless entry); max_claims 0
        gives back a task of one's own without counting a loss; ``lease_rule`` recovers a live
        owner's task whose lease has run out (its worker key says ``leases task``)."""
        k = self.keys
        key = k.task(task_id)
        keys = [key, k.executing, k.pending, k.failed, k.dependents(task_id), k.releasing]
        if owner:
            keys.append(k.worker(owner))
        return ScriptCall(
            "recover", keys,
            [entry, owner, max_claims, now_iso(), k.results, key, task_id, now_ms(),
             ttl_arg(failure_ttl), "lease" if lease_rule else ""],
            lambda raw: Recovered(raw.decode() if isinstance(raw, bytes) else raw),
        )  # fmt: skip

    def promote(self, entry: bytes, task_id: str | None, now: int) -> ScriptCall[bool]:
        k = self.keys
        # An invalid id gets no key of its own; the claim that follows rejects it.
        key = k.task(task_id) if task_id is not None else k.task_prefix
        return ScriptCall("promote", [key, k.scheduled, k.pending], [entry, now],
                          lambda raw: raw == 1)  # fmt: skip

    # -- follow-ups ---------------------------------------------------------------------------

    def release(
        self, child: str, parent: str, outcome: str, failure_ttl: int, *, into_executing: bool
    ) -> ScriptCall[Released]:
        k = self.keys
        key = k.task(child)
        target = k.executing if into_executing else k.pending
        keys = [key, target, k.dependents(parent), k.failed, k.dependents(child), k.releasing]
        return ScriptCall(
            "release",
            [*keys, k.waiting],
            [child, parent, outcome, now_iso(), now_ms(), k.results, key, ttl_arg(failure_ttl)],
            lambda raw: Released(int(raw)),
        )

    # -- plain reads and writes ---------------------------------------------------------------

    def read_task(self, task_id: str) -> Command[dict[bytes, bytes]]:
        return Command(("HGETALL", self.keys.task(task_id)), _hash)

    def ownership(self, task_id: str) -> Command[list[bytes | None]]:
        """state, worker, claims and lease-expires of a task."""
        return Command(("HMGET", self.keys.task(task_id), "state", "worker", "claims",
                        "lease-expires"), list)  # fmt: skip

    def owner(self, worker: str) -> Command[tuple[bool, bool]]:
        """Whether a worker's key exists, and whether it keeps task leases (SPEC.md 9.1)."""
        return Command(("HMGET", self.keys.worker(worker), "id", "leases"),
                       lambda raw: (raw[0] is not None, raw[1] == b"task"))  # fmt: skip

    def dependents(self, task_id: str) -> Command[list[bytes]]:
        return Command(("SMEMBERS", self.keys.dependents(task_id)), list)

    def drop_dependent(self, parent: str, raw: bytes) -> Command[Any]:
        return Command(("SREM", self.keys.dependents(parent), raw), _same)

    def followups_done(self, task_id: str | bytes) -> Command[Any]:
        return Command(("SREM", self.keys.releasing, task_id), _same)

    def followups_due(self, limit: int) -> Command[list[bytes]]:
        return Command(("SRANDMEMBER", self.keys.releasing, limit), lambda raw: list(raw or []))

    def pending_length(self) -> Command[int]:
        return Command(("LLEN", self.keys.pending), int)

    def waiting_due(self, now: int, limit: int) -> Command[list[bytes]]:
        """Ids of the index of waiting tasks whose parents check is due (SPEC.md 5.13)."""
        return Command(("ZRANGEBYSCORE", self.keys.waiting, "-inf", now, "LIMIT", 0, limit), list)

    def waiting_parents(self, task_id: str) -> Command[list[bytes | None]]:
        """state and depends-on of a task."""
        return Command(("HMGET", self.keys.task(task_id), "state", "depends-on"), list)

    def task_exists(self, task_id: str) -> Command[bool]:
        return Command(("EXISTS", self.keys.task(task_id)), bool)

    def check_waiting_later(self, task_id: str, due_ms: int) -> Command[Any]:
        return Command(("ZADD", self.keys.waiting, due_ms, task_id), _same)

    def unindex_waiting(self, task_id: str | bytes) -> Command[Any]:
        return Command(("ZREM", self.keys.waiting, task_id), _same)

    def cancel_requested(self, task_id: str) -> Command[bool]:
        return Command(("HEXISTS", self.keys.task(task_id), "cancel-requested"),
                       bool)  # fmt: skip

    def executing_page(self, start: int, count: int) -> Command[list[bytes]]:
        return Command(("LRANGE", self.keys.executing, start, start + count - 1), list)

    def due_entries(self, now: int, limit: int) -> Command[list[bytes]]:
        return Command(("ZRANGEBYSCORE", self.keys.scheduled, "-inf", now, "LIMIT", 0, limit), list)

    def leave(self, worker: str) -> Command[Any]:
        return Command(("DEL", self.keys.worker(worker)), _same)

    def claim(self) -> Command[bytes | None]:
        """LMOVE pending -> executing: the oldest entry, now claimed (SPEC.md 5.2)."""
        k = self.keys
        return Command(("LMOVE", k.pending, k.executing, "RIGHT", "LEFT"), _same)

    def claim_blocking(self, seconds: float) -> Command[bytes | None]:
        """BLMOVE: as ``claim``, waiting up to ``seconds`` for an entry."""
        k = self.keys
        return Command(("BLMOVE", k.pending, k.executing, "RIGHT", "LEFT", seconds), _same)
