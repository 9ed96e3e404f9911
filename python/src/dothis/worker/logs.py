"""The worker's log: one line per task event, as text or as JSON for log pipelines.

``TaskLog`` is an observer of task events (engine/events.py): a start and a success at INFO, a
retry at WARNING and a failure at ERROR, with its traceback, each line naming the queue, the task
id, the function, the try and its timing. (Rejected entries, recovered tasks and discarded
outcomes are logged where they happen, with their details.) The same facts travel as ``extra``
attributes (``queue``, ``task_id``, ``function``, ``try_number``, ``attempts``, ``seconds``,
``event``, ``code``), which ``--log-format json`` prints as fields of their own.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from dothis.engine.events import Kind, TaskEvent

log = logging.getLogger("dothis.tasks")

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"

_LEVELS = {
    Kind.STARTED: logging.INFO,
    Kind.SUCCEEDED: logging.INFO,
    Kind.RETRIED: logging.WARNING,
    Kind.FAILED: logging.ERROR,
    Kind.CANCELLED: logging.INFO,
    Kind.EXPIRED: logging.WARNING,
}


def configure(level: str = "info", fmt: str = "text") -> None:
    """Log to stderr at ``level`` (debug, info, warning, error), as text lines or JSON objects."""
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r}: use text or json")
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(JsonFormatter(JSON_FIELDS, rename_fields={"levelname": "level"}))
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def _try(event: TaskEvent) -> str:
    if event.try_number is None:
        return ""
    return f", try {event.try_number}" + (f" of {event.attempts}" if event.attempts else "")


def _what(event: TaskEvent) -> str:
    """The event in words: 'succeeded in 0.012 s', 'failed (timeout: ...)', ..."""
    took = f" in {event.seconds:.3f} s" if event.seconds is not None else ""
    why = f" ({event.code}: {event.reason})" if event.code else ""
    if event.kind is Kind.RETRIED:
        return f"failed{took}{why}; retried in {event.delay or 0:.1f} s"
    return f"{event.kind.value}{took}{why}"


class TaskLog:
    """Writes one log line per task event."""

    def __call__(self, event: TaskEvent) -> None:
        level = _LEVELS.get(event.kind)
        if level is None or not log.isEnabledFor(level):
            return
        extra: dict[str, Any] = {
            "event": event.kind.value, "queue": event.queue, "task_id": event.task_id,
            "function": event.function, "try_number": event.try_number,
            "attempts": event.attempts, "seconds": event.seconds, "code": event.code,
            "worker_id": event.worker_id,
        }  # fmt: skip
        trace = f"\n{event.traceback.rstrip()}" if event.traceback else ""
        log.log(level, "task %s (%s) on %s: %s%s%s", event.task_id, event.function or "-",
                event.queue, _what(event), _try(event), trace, extra=extra)  # fmt: skip
