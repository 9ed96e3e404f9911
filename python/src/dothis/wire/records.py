"""Records read from or written to Redis: a task hash decoded (TaskInfo), a failure's error
fields, a rejected entry's record and a worker key's fields."""

from __future__ import annotations

import json
import os
import socket
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dothis.errors import TaskFailed
from dothis.version import __version__
from dothis.wire import codec
from dothis.wire.clock import now_iso, parse_iso
from dothis.wire.protocol import PROTOCOL_VERSION, ErrorCode, Field, Outcome, RejectCode, State

ENTRY_RECORD_CHARS = 1024


@dataclass(frozen=True)
class Failure:
    """Why a try or a task failed: the error-code, error-reason and error-exception fields."""

    code: ErrorCode
    reason: str
    exception: str = ""

    @classmethod
    def from_exception(cls, error: BaseException) -> Failure:
        reason = str(error) or type(error).__name__
        return cls(ErrorCode.EXCEPTION, reason, "".join(traceback.format_exception(error)))


@dataclass(frozen=True)
class TaskInfo:
    """A snapshot of a task hash, decoded."""

    id: str
    fields: dict[str, str] = field(repr=False)

    @classmethod
    def from_hash(cls, task_id: str, raw: dict[bytes, bytes]) -> TaskInfo:
        decoded = {
            key.decode("utf-8", "replace"): value.decode("utf-8", "replace")
            for key, value in raw.items()
        }
        return cls(task_id, decoded)

    def get(self, name: Field) -> str | None:
        return self.fields.get(name.value)

    @property
    def function(self) -> str | None:
        return self.get(Field.FUNCTION)

    @property
    def state(self) -> str | None:
        return self.get(Field.STATE)

    @property
    def outcome(self) -> str | None:
        """The ``result`` field: successful, failed, cancelled or expired; None until it ends."""
        return self.get(Field.RESULT)

    @property
    def finished(self) -> bool:
        return self.state == State.FINISHED and self.outcome is not None

    @property
    def progress(self) -> dict[str, Any] | None:
        """The last progress report (SPEC.md 5.16): fraction, message, updated; None when there is
        none or it does not parse as a JSON object."""
        raw = self.get(Field.PROGRESS)
        try:
            report = codec.decode(raw) if raw is not None else None
        except ValueError:
            return None
        return report if isinstance(report, dict) else None

    @property
    def value(self) -> Any:
        """The function's return value when the task succeeded, else None."""
        raw = self.get(Field.RESULT_VALUE)
        if self.outcome != Outcome.SUCCESSFUL or raw is None:
            return None
        return codec.decode(raw)

    def _seconds_between(self, first: Field, last: Field) -> float | None:
        start, end = self.get(first), self.get(last)
        if not start or not end:
            return None
        try:
            return (parse_iso(end) - parse_iso(start)).total_seconds()
        except ValueError:
            return None

    @property
    def time_taken(self) -> float | None:
        """Seconds from the (last) start to the finish, once finished."""
        return self._seconds_between(Field.EXECUTING_CREATED, Field.FINISHED_CREATED)

    @property
    def queued_for(self) -> float | None:
        """Seconds from enqueue to the (last) start."""
        return self._seconds_between(Field.PENDING_CREATED, Field.EXECUTING_CREATED)

    def failure(self) -> TaskFailed | None:
        """The error of a task that ended in any outcome other than success, else None."""
        if not self.finished or self.outcome == Outcome.SUCCESSFUL:
            return None
        return TaskFailed(
            self.id,
            self.get(Field.ERROR_CODE) or "",
            self.get(Field.ERROR_REASON) or "",
            self.get(Field.ERROR_EXCEPTION) or "",
        )


def rejection_record(entry: bytes, code: RejectCode, reason: str, worker_id: str) -> str:
    """A <queue>:rejected record (schema/rejected.schema.json)."""
    return json.dumps(
        {
            "entry": entry.decode("utf-8", "replace")[:ENTRY_RECORD_CHARS],
            "error-code": code.value,
            "error-reason": reason,
            "rejected-created": now_iso(),
            "worker": worker_id,
        }
    )


def worker_record(
    worker_id: str,
    queues: Sequence[str],
    functions: Sequence[str],
    concurrency: int,
    language: str = "python",
) -> dict[str, str]:
    """The fields of a worker key (SPEC.md 9.1: every REQUIRED field, and a few more)."""
    now = now_iso()
    return {
        "id": worker_id, "host": socket.gethostname(), "pid": str(os.getpid()),
        "language": language, "implementation": f"dothis-{language}", "version": __version__,
        "protocol": str(PROTOCOL_VERSION),
        "queues": codec.encode(list(queues)), "functions": codec.encode(sorted(functions)),
        "concurrency": str(concurrency), "started": now, "heartbeat": now,
    }  # fmt: skip


@dataclass(frozen=True)
class Claim:
    """A task a worker owns: the entry it moved, and the fencing token start.lua returned."""

    entry: bytes
    task_id: str
    worker: str
    claims: int


@dataclass(frozen=True)
class Ending:
    """How a task ends: its outcome and the fields finish.lua writes (state=finished, ...)."""

    outcome: Outcome
    fields: list[str]

    @property
    def failed(self) -> bool:
        """Every outcome but success counts as failed (registry, TTL, callback)."""
        return self.outcome != Outcome.SUCCESSFUL


@dataclass(frozen=True)
class NextTry:
    """A failed try with attempts left: when the next one is due and the fields retry.lua writes."""

    due_ms: int
    fields: list[str]
