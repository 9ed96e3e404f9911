"""Typed replies of the protocol's scripts: callers match on these, never on bare integers."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import NamedTuple

from dothis.wire.protocol import ErrorCode, RejectCode


class Enqueued(Enum):
    """enqueue.lua."""

    CREATED = 1
    EXISTS = 0
    PARENT_FAILED = -2
    PARENT_MISSING = -3


@dataclass(frozen=True)
class Started:
    """start.lua: the worker owns the task; ``fields`` is the whole hash."""

    claims: int
    fields: dict[bytes, bytes]


@dataclass(frozen=True)
class Refused:
    """start.lua: owned, but the hash cannot run (too-large or invalid-state); it must be failed."""

    claims: int
    code: ErrorCode
    detail: str


@dataclass(frozen=True)
class Rejected:
    """start.lua: the entry names no usable hash; it goes to <queue>:rejected."""

    code: RejectCode
    reason: str


@dataclass(frozen=True)
class Skipped:
    """start.lua: nothing to do (recovered meanwhile, or a duplicate entry of a started task)."""

    reason: str


StartReply = Started | Refused | Rejected | Skipped


@dataclass(frozen=True)
class Unstarted:
    """take.lua: the entry was claimed (it is in executing) but not started, because the script
    does not map its id to a key (an id that is not printable ASCII, or not valid at all). The
    caller handles it at once as a claimed entry (SPEC.md 5.2): reject it with invalid-id, or start
    it with start.lua."""


TakeReply = StartReply | Unstarted


class Taken(NamedTuple):
    """One entry take.lua moved from pending to executing, in claim order: the entry byte for byte,
    and what start.lua would have replied for it (or ``Unstarted``)."""

    entry: bytes
    reply: TakeReply


class Finished(Enum):
    """finish.lua."""

    WRITTEN = 1
    FOLLOWUPS_DUE = 2  # written, and the id joined <queue>:releasing
    FENCED = 0  # the task is no longer this claim's: nothing written
    GONE = -1  # no hash: the entry left executing, nothing else


class Rescheduled(Enum):
    """retry.lua."""

    SCHEDULED = 1
    FENCED = 0
    GONE = -1


class Recovered(StrEnum):
    """recover.lua."""

    REQUEUED = "requeued"
    FAILED = "failed"  # lost max-claims times: ended as worker-lost
    GONE = "gone"
    ALIVE = "alive"
    CHANGED = "changed"
    OWNED = "owned"


class Requeued(Enum):
    """requeue.lua."""

    REQUEUED = 1
    NOT_FAILED = 0
    GONE = -1
    NOT_FINISHED = 2  # not a finished, unsuccessful task: the stale id left the registry


class Released(Enum):
    """release.lua: what telling a waiting child that its parent ended did."""

    NOTHING = 0
    READY = 1  # the last parent succeeded: the child is queued
    STILL_WAITING = 2
    FAILED = 3  # the parent did not succeed: the child ended as dependency-failed


class Cancelled(Enum):
    """cancel.lua."""

    CANCELLED = 1  # it had not started: ended as cancelled
    REQUESTED = 2  # it is running: its worker stops it
    FINISHED = 0  # too late
    NOT_FOUND = -1


class Deleted(Enum):
    """delete.lua."""

    DELETED = 1  # its hash and every entry of it are gone
    RUNNING = 2  # it is executing: nothing done (cancel it first)
    NOT_FOUND = -1  # no hash (its stale entries were removed)


class Fired(Enum):
    """fire.lua."""

    FIRED = 1
    ARMED = 2  # first sight of the schedule: recorded, not fired
    DONE = 0  # fired already (by this worker or another)
