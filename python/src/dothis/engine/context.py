"""The task a function is running for, and what runs around it.

Inside a task function, ``dothis.current_task()`` gives its ``TaskContext``: id, queue, function,
try number, attempts and worker id, the fields of its hash (``traceparent`` among them), and
``progress()`` to report how far it got (SPEC.md 5.16). Middleware, registered with the functions
(``@dothis.middleware``), is a context manager factory entered around every call, in the process
that runs it: a database session, a trace span, a timer.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

Middleware = Callable[["TaskContext"], AbstractContextManager[Any]]
# What a middleware returns when it has nothing to do around a call: it is not entered.
NOTHING: AbstractContextManager[None] = contextlib.nullcontext()
# Writes a task's progress (the worker installs one per process; see worker/progress.py).
Reporter = Callable[["TaskContext", float, "str | None"], bool]

# Hash fields a function's context does not carry: the args (the function has them), results and
# errors of earlier tries (possibly large).
_LEFT_OUT = ("args", "result-value", "error-exception", "error-reason")


@dataclass(frozen=True)
class TaskContext:
    id: str
    queue: str
    function: str
    try_number: int  # 1 for the first try
    attempts: int
    worker_id: str
    claims: int  # the fencing token of this try (SPEC.md 5.3)
    fields: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def traceparent(self) -> str | None:
        return self.fields.get("traceparent")

    @property
    def tracestate(self) -> str | None:
        return self.fields.get("tracestate")

    def progress(self, fraction: float, message: str | None = None) -> bool:
        """Report how far the task got: ``fraction`` from 0 to 1 and an optional message, written
        to its hash (the ``progress`` field) and announced on ``<queue>:progress``. False when the
        task is no longer this try's (it was recovered elsewhere) or nothing can report here."""
        if not 0 <= fraction <= 1:
            raise ValueError(f"progress is a fraction from 0 to 1, not {fraction!r}")
        if message is not None and not isinstance(message, str):
            raise TypeError(f"a progress message is text, not {type(message).__name__}")
        reporter = _reporter["write"]
        return reporter(self, float(fraction), message) if reporter is not None else False

    def to_message(self) -> dict[str, Any]:
        """As JSON-ready data, for a child process."""
        # Not dataclasses.asdict: it deep-copies every field, on the path of every try.
        return {"id": self.id, "queue": self.queue, "function": self.function,
                "try_number": self.try_number, "attempts": self.attempts,
                "worker_id": self.worker_id, "claims": self.claims,
                "fields": dict(self.fields)}  # fmt: skip

    @classmethod
    def from_message(cls, data: Mapping[str, Any]) -> TaskContext:
        return cls(**data)

    @classmethod
    def of(cls, task_id: str, queue: str, function: str, try_number: int, attempts: int,
           worker_id: str, claims: int, raw: Mapping[bytes, bytes]) -> TaskContext:  # fmt: skip
        """From a started task's hash (as start.lua returned it)."""
        fields = {k.decode("utf-8", "replace"): v.decode("utf-8", "replace")
                  for k, v in raw.items()}  # fmt: skip
        for name in _LEFT_OUT:
            fields.pop(name, None)
        return cls(task_id, queue, function, try_number, attempts, worker_id, claims, fields)


_current: ContextVar[TaskContext | None] = ContextVar("dothis_current_task", default=None)
_reporter: dict[str, Reporter | None] = {"write": None}


def current_task() -> TaskContext | None:
    """The task the calling code runs for, or None outside a task."""
    return _current.get()


def progress(fraction: float, message: str | None = None) -> bool:
    """``current_task().progress(...)``; False outside a task."""
    task = _current.get()
    return task.progress(fraction, message) if task is not None else False


def set_reporter(reporter: Reporter | None) -> None:
    """How this process writes progress (the worker sets it; None: progress is not written)."""
    _reporter["write"] = reporter


class running:
    """Make ``task`` the current task and enter each middleware around the call, in order (a
    class rather than a generator: it is on the path of every try, usually with no middleware)."""

    __slots__ = ("middleware", "stack", "task", "token")

    def __init__(self, task: TaskContext | None, middleware: Sequence[Middleware] = ()) -> None:
        self.task = task
        self.middleware = middleware if task is not None else ()
        self.stack: contextlib.ExitStack | None = None

    def __enter__(self) -> None:
        self.token = _current.set(self.task)
        if not self.middleware or self.task is None:
            return
        stack = None  # made for the first middleware that has something to do
        try:
            for factory in self.middleware:
                manager = factory(self.task)
                if manager is not NOTHING:
                    stack = stack or contextlib.ExitStack()
                    stack.enter_context(manager)
        except BaseException:
            try:
                if stack is not None:
                    stack.__exit__(*sys.exc_info())
            finally:
                _current.reset(self.token)
            raise
        self.stack = stack

    def __exit__(self, *exc: Any) -> bool:
        try:
            return bool(self.stack.__exit__(*exc)) if self.stack is not None else False
        finally:
            _current.reset(self.token)
