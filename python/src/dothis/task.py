"""A handle on one task: its id, and its state and outcome read live from the task hash."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dothis import codec
from dothis.errors import TaskFailed, WaitTimeout
from dothis.protocol import Field, Outcome, State

if TYPE_CHECKING:
    from dothis.producer import Queue


def _parse(timestamp: str) -> datetime:
    return datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%S.%fZ")


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
        return self.get(Field.RESULT)

    @property
    def finished(self) -> bool:
        return self.state == State.FINISHED and self.outcome is not None

    @property
    def value(self) -> Any:
        """The function's return value when the task succeeded, else None."""
        raw = self.get(Field.RESULT_VALUE)
        if self.outcome != Outcome.SUCCESSFUL or raw is None:
            return None
        return codec.decode(raw)

    @property
    def time_taken(self) -> float | None:
        """Seconds from the (last) start to the finish, once finished."""
        started, finished = self.get(Field.EXECUTING_CREATED), self.get(Field.FINISHED_CREATED)
        if not started or not finished:
            return None
        return (_parse(finished) - _parse(started)).total_seconds()

    @property
    def queued_for(self) -> float | None:
        """Seconds from enqueue to the (last) start."""
        created, started = self.get(Field.PENDING_CREATED), self.get(Field.EXECUTING_CREATED)
        if not created or not started:
            return None
        return (_parse(started) - _parse(created)).total_seconds()

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


class Task:
    """A task in a queue. ``state``, ``outcome``, ``result`` and ``error`` read Redis each time."""

    def __init__(self, queue: Queue, task_id: str) -> None:
        self.queue = queue
        self.id = task_id
        self.key = queue.keys.task(task_id)

    def __repr__(self) -> str:
        return f"Task({self.queue.name!r}, {self.id!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Task) and (other.key, other.queue.url) == (
            self.key,
            self.queue.url,
        )

    def __hash__(self) -> int:
        return hash(self.key)

    def refresh(self) -> TaskInfo | None:
        """The whole hash, or None when it does not exist."""
        return self.queue.read_task(self.id)

    @property
    def state(self) -> str | None:
        info = self.refresh()
        return info.state if info else None

    @property
    def outcome(self) -> str | None:
        """``successful``, ``failed`` (or another outcome), None until the task finishes."""
        info = self.refresh()
        return info.outcome if info else None

    @property
    def result(self) -> Any:
        """The function's return value once the task succeeded; None before, or on failure."""
        info = self.refresh()
        return info.value if info else None

    @property
    def error(self) -> TaskFailed | None:
        info = self.refresh()
        return info.failure() if info else None

    def cancel(self) -> str:
        """Cancel the task: ``cancelled`` (it had not started), ``requested`` (it is running;
        its worker stops it and records result cancelled) or ``finished`` (too late)."""
        return self.queue.cancel(self.id)

    def wait_started(self, timeout: float | None = None) -> bool:
        """True once the task is executing or finished; False if ``timeout`` s pass first.

        A bounded poll of the hash's state (starting is not announced on the results channel).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        interval = 0.005
        while True:
            state = self.state
            if state in (State.EXECUTING, State.FINISHED):
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            pause = interval if deadline is None else min(interval, deadline - time.monotonic())
            time.sleep(max(pause, 0))
            interval = min(interval * 2, 0.2)

    def wait(self, timeout: float | None = None) -> Any:
        """Block until the task finishes and return the function's value.

        Listens on the queue's results channel (one subscription per Queue, shared by every wait);
        raises TaskFailed when the task failed and WaitTimeout when ``timeout`` seconds pass.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.queue.results.watch(self.key) as event:
            while True:
                info = self.refresh()
                if info is not None and info.finished:
                    failure = info.failure()
                    if failure is not None:
                        raise failure
                    return info.value
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise WaitTimeout(
                        f"task {self.id} did not finish within {timeout} s "
                        f"(state: {info.state if info else 'no such task'})"
                    )
                event.wait(remaining)
                event.clear()
