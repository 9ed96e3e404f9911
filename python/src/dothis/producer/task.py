"""A handle on one task: its id, and its state and outcome read live from the task hash."""

from __future__ import annotations

import contextlib
import random
import time
from typing import Any, Protocol

from dothis.errors import TaskFailed, WaitTimeout
from dothis.producer.results import Mark, ResultListener
from dothis.store.connection import connect_node, translate_errors
from dothis.wire.protocol import Keys, State
from dothis.wire.records import TaskInfo

# Task.wait re-reads the hash after this long, doubling up to the maximum, whatever it hears.
RECHECK_FIRST_SECONDS = 0.1
RECHECK_MAX_SECONDS = 5.0
# During its first pause a wait reads the results subscription itself (when no other wait of
# the queue does) for at most this long: the message then wakes no second thread.
READ_HERE_SECONDS = 0.1


class Source(Protocol):
    """What a Task reads through: a Queue."""

    name: str
    url: str
    keys: Keys

    @property
    def results(self) -> ResultListener: ...

    def read_task(self, task_id: str) -> TaskInfo | None: ...

    def read_outcome(self, task_id: str) -> TaskInfo | None: ...

    def cancel(self, task_id: str) -> str: ...

    def delete_task(self, task_id: str) -> str: ...


class Task:
    """A task in a queue. ``state``, ``outcome``, ``result`` and ``error`` read Redis each time.

    Names, the same in SPEC.md and the Node client: the ``outcome`` is how the task ended (the
    hash's ``result`` field: successful, failed, cancelled, expired); the ``value`` is what the
    function returned (``result`` is rq's name for it).
    """

    def __init__(
        self, queue: Source, task_id: str, mark: Mark | None = None, fresh: bool = False
    ) -> None:
        self.queue = queue
        self.id = task_id
        self.key = queue.keys.task(task_id)
        # Where the queue's results subscription stood before this task was enqueued (None when
        # it was not up, or the handle was made otherwise): see ResultListener.watch.
        self._mark = mark
        # Enqueued here under an id made here (random), and no ending seen yet: no earlier run
        # had its key, so an outcome message for the key heard during a wait is this run's
        # (SPEC.md 6.1).
        self._fresh = fresh

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
        """``successful``, ``failed``, ``cancelled`` or ``expired``; None until the task ends."""
        info = self.refresh()
        return info.outcome if info else None

    @property
    def value(self) -> Any:
        """The function's return value once the task succeeded; None before, or on failure."""
        info = self.refresh()
        return info.value if info else None

    @property
    def result(self) -> Any:
        """The same as ``value`` (rq's name for it)."""
        return self.value

    @property
    def error(self) -> TaskFailed | None:
        info = self.refresh()
        return info.failure() if info else None

    @property
    def progress(self) -> dict[str, Any] | None:
        """The last progress the task reported: ``{"fraction", "message", "updated"}``, or None."""
        info = self.refresh()
        return info.progress if info else None

    def wait_progress(self, timeout: float) -> dict[str, Any]:
        """The next progress report after this call (SPEC.md 5.16: a message on
        ``<queue>:progress``); WaitTimeout when none comes within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        client = connect_node(self.queue.url)
        pubsub = client.pubsub()  # type: ignore[no-untyped-call]
        with translate_errors(self.queue.url), contextlib.closing(client), pubsub:
            pubsub.subscribe(self.queue.keys.progress)
            while (left := deadline - time.monotonic()) > 0:
                message = pubsub.get_message(ignore_subscribe_messages=True, timeout=left)
                if message is not None and message["data"] == self.key.encode():
                    report = self.progress
                    if report is not None:
                        return report
        raise WaitTimeout(
            f"task {self.id} reported no progress within {timeout} s (state: {self.state}); "
            "wait longer, or check that its function calls dothis.progress()"
        )

    def cancel(self) -> str:
        """Cancel the task: ``cancelled`` (it had not started), ``requested`` (it is running;
        its worker stops it and records outcome cancelled) or ``finished`` (too late)."""
        return self.queue.cancel(self.id)

    def delete(self) -> str:
        """Delete the task with every entry of it (SPEC.md 5.17): ``deleted``, or ``running``
        (nothing done: cancel it first); TaskNotFound when it does not exist."""
        return self.queue.delete_task(self.id)

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
        """Block until the task ends and return the function's value.

        Listens on the queue's results channel (one subscription per Queue, shared by every wait);
        raises TaskFailed when the task ended any other way than successful, and WaitTimeout when
        ``timeout`` seconds pass.

        The hash is read once before the wait sleeps (spared when the queue's subscription was up
        before the task was enqueued: it heard every announcement of it since), after each
        announcement, and on a timer (after at most 0.1 s, the bound doubling up to
        ``RECHECK_MAX_SECONDS``; each pause is drawn from the upper half of it, so that waits
        started together do not read together), so a wait ends within that much of the task's end
        even when every message is lost (a connection that died silently), and never sleeps past
        its timeout.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        interval = RECHECK_FIRST_SECONDS
        info: TaskInfo | None = None
        results = self.queue.results
        with results.watch(self.key, within=timeout, since=self._mark) as (event, read_first):
            read = read_first
            while True:
                if read:
                    if self._fresh and event.outcome is not None:  # no read needed (6.1)
                        info = TaskInfo(self.id, {"state": State.FINISHED.value, **event.outcome})
                    else:
                        with results.reads:
                            info = self.queue.read_outcome(self.id)
                    if info is not None and info.finished:
                        # Once an ending was seen, the task may run again (a requeue), and the
                        # messages of that ending may still be unread when the next wait starts:
                        # the next wait reads the hash.
                        self._fresh = False
                        failure = info.failure()
                        if failure is not None:
                            raise failure
                        return info.value
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    if not read:  # the hash is read at least once, whatever was heard
                        read = True
                        continue
                    raise WaitTimeout(
                        f"task {self.id} did not finish within {timeout} s "
                        f"(state: {info.state if info else 'no such task'}); wait longer, or "
                        "check that a worker serves this queue (dothis info)"
                    )
                pause = interval * random.uniform(0.5, 1.0)  # waits started together read apart
                pause = pause if remaining is None else min(pause, remaining)
                if interval == RECHECK_FIRST_SECONDS:  # a short task's wait: the latency counts
                    started = time.monotonic()
                    results.read_here(self.key, event, min(pause, READ_HERE_SECONDS))
                    pause -= time.monotonic() - started
                event.wait(max(pause, 0.0))
                event.clear()
                interval = min(interval * 2, RECHECK_MAX_SECONDS)
                read = True
