"""What happens to tasks, as events: the one stream that the worker's log lines, its metrics and
its traces all read.

The flows (``lifecycle``) and the reaper emit a ``TaskEvent`` at each step a person watching the
queue cares about; a consumer passes ``Observers`` in its context. An observer is called inline,
so it must be quick and must not do I/O on Redis; one that raises is logged and skipped, never
allowed to disturb the task.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

log = logging.getLogger("dothis.events")


class Kind(StrEnum):
    STARTED = "started"  # start.lua gave the task to this worker and its try begins
    SUCCEEDED = "succeeded"
    RETRIED = "retried"  # a try failed and another is scheduled
    FAILED = "failed"  # ended without success (exception, timeout, crashed, worker-lost, ...)
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    REJECTED = "rejected"  # an entry that names no usable task (SPEC.md 5.8)
    RECOVERED = "recovered"  # a reaper put a lost worker's task back in pending
    DISCARDED = "discarded"  # an outcome not recorded: fenced off, or its hash was gone


# The kinds that end a try, with the outcome each records.
ENDINGS = {
    Kind.SUCCEEDED: "successful",
    Kind.FAILED: "failed",
    Kind.CANCELLED: "cancelled",
    Kind.EXPIRED: "expired",
}


@dataclass(frozen=True)
class TaskEvent:
    kind: Kind
    queue: str
    task_id: str
    worker_id: str
    function: str | None = None
    try_number: int | None = None  # 1 for the first try
    attempts: int | None = None
    seconds: float | None = None  # how long the try ran
    code: str | None = None  # the error-code of a failure, or the reject code
    reason: str | None = None
    traceback: str | None = None
    delay: float | None = None  # seconds until the next try
    fields: Mapping[bytes, bytes] = field(default_factory=dict, repr=False)  # as start returned


Observer = Callable[[TaskEvent], None]


class Observers:
    """Every observer of one consumer, called in order."""

    def __init__(self, observers: list[Observer] | None = None) -> None:
        self.observers: list[Observer] = list(observers or [])

    def add(self, observer: Observer) -> None:
        self.observers.append(observer)

    def __call__(self, event: TaskEvent) -> None:
        for observer in self.observers:
            try:
                observer(event)
            except Exception:
                log.exception("an observer of task events failed on %s", event.kind)
