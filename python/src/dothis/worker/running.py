"""What the worker runs now, per queue: the ``running`` field of its worker key (SPEC.md 9.1),
which tools show next to the worker. Kept from the task events; read by the heartbeat thread."""

from __future__ import annotations

import threading
import time
from typing import Any

from dothis.engine.events import Kind, TaskEvent
from dothis.wire.clock import iso_from_us

MAX_LISTED = 100


class RunningNow:
    def __init__(self) -> None:
        self._tasks: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()

    def __call__(self, event: TaskEvent) -> None:
        """An observer of task events: a start adds the task, anything after it removes it."""
        key = (event.queue, event.task_id)
        with self._lock:
            if event.kind is Kind.STARTED:
                self._tasks[key] = {"id": event.task_id, "function": event.function,
                                    "since": time.time()}  # fmt: skip
            else:
                self._tasks.pop(key, None)

    def forget(self, queue: str, task_id: str) -> None:
        """The worker let go of the task, however its handling ended."""
        with self._lock:
            self._tasks.pop((queue, task_id), None)

    def snapshot(self, queue: str) -> list[dict[str, Any]]:
        """The tasks of ``queue`` running now, the longest-running first, at most 100."""
        with self._lock:
            tasks = [task for (name, _), task in self._tasks.items() if name == queue]
        oldest = sorted(tasks, key=lambda task: task["since"])[:MAX_LISTED]
        return [{**task, "since": iso_from_us(int(task["since"] * 1_000_000))} for task in oldest]
