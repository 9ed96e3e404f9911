"""One try of a task function and what it produced.

A try ends in exactly one ``TryResult``; the decision (``decide``) turns it into the task's next
state. ``Retry`` is what a task raises to ask for another try.
"""

from __future__ import annotations

import asyncio
import os
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dothis.engine.context import Middleware, TaskContext, running
from dothis.wire import codec


class Retry(Exception):
    """Raise inside a task to try it again later, if it has attempts left.

    ``delay`` is in seconds; None uses the worker's exponential backoff.
    """

    def __init__(self, reason: str = "retry requested", delay: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay = delay


@dataclass(frozen=True)
class Returned:
    encoded: str  # the JSON text of the value


@dataclass(frozen=True)
class Raised:
    reason: str
    traceback: str = ""


@dataclass(frozen=True)
class RetryRequested:
    reason: str
    delay: float | None = None


@dataclass(frozen=True)
class Unserializable:
    type_name: str
    error: str


@dataclass(frozen=True)
class TimedOut:
    seconds: float | None


@dataclass(frozen=True)
class Crashed:
    detail: str


@dataclass(frozen=True)
class Stopped:
    """The try was stopped because the task was cancelled while it ran."""


@dataclass(frozen=True)
class TooLarge:
    """The function returned a value whose JSON text is longer than the worker's max-value-bytes
    (SPEC.md 5.4); the task fails with ``too-large`` rather than a finish Redis refuses."""

    size: int  # bytes of the JSON text (UTF-8)
    limit: int

    @property
    def detail(self) -> str:
        return (f"the function returned a value of {self.size} bytes of JSON, more than the "
                f"worker's max-value-bytes of {self.limit}")  # fmt: skip


TryResult = (
    Returned | Raised | RetryRequested | Unserializable | TimedOut | Crashed | Stopped | TooLarge
)


def _encoded(value: Any) -> TryResult:
    try:
        return Returned(codec.encode(value))
    except (TypeError, ValueError) as error:
        return Unserializable(type(value).__name__, str(error))


def encoded_size(text: str) -> int:
    """Bytes of ``text`` as UTF-8 (as Redis stores it)."""
    return len(text.encode("utf-8", "surrogatepass"))


def within_limit(result: TryResult, max_value_bytes: int) -> TryResult:
    """``result``, or ``TooLarge`` when it returned a value longer than ``max_value_bytes``."""
    if not isinstance(result, Returned):
        return result
    text = result.encoded
    if len(text) * 4 <= max_value_bytes:  # no character takes more than 4 bytes
        return result
    size = encoded_size(text)
    return TooLarge(size, max_value_bytes) if size > max_value_bytes else result


def _raised(error: BaseException) -> TryResult:
    if isinstance(error, Retry):
        return RetryRequested(error.reason, error.delay)
    reason = str(error) or type(error).__name__
    return Raised(reason, "".join(traceback.format_exception(error)))


_home = {"pid": 0}
_FORKED_NOTE = (
    b"dothis: a process forked by task code returned from the task; it exits here, for it would "
    b"otherwise go on as a copy of the worker (end a forked process with os._exit())\n"
)


def serve_tries_here() -> None:
    """Mark this process as the one whose tries report back: a worker, or a pool child."""
    _home["pid"] = os.getpid()


def leave_if_forked() -> None:
    """A process that task code forked, coming back from the task into the worker's code, exits
    at once: it is a copy of the worker, with its connections, its sockets and its event loop, and
    would answer, claim and write as if it were the worker (careless ``os.fork()``)."""
    if _home["pid"] and os.getpid() != _home["pid"]:
        os.write(2, _FORKED_NOTE)
        os._exit(0)


def run_call(
    function: Callable[..., Any],
    args: dict[str, Any],
    task: TaskContext | None = None,
    middleware: Sequence[Middleware] = (),
) -> TryResult:
    """Run a plain function for ``task``, inside its middleware, and describe the outcome (in
    children, threads and inline alike)."""
    try:
        with running(task, middleware):
            value = function(**args)
    except BaseException as error:  # a task's SystemExit is its failure, not the worker's
        leave_if_forked()
        return _raised(error)
    leave_if_forked()
    return _encoded(value)


async def run_coroutine(
    function: Callable[..., Any],
    args: dict[str, Any],
    task: TaskContext | None = None,
    middleware: Sequence[Middleware] = (),
) -> TryResult:
    """Run an ``async def`` function on the running loop, for ``task``, inside its middleware."""
    try:
        with running(task, middleware):
            value = await function(**args)
    except asyncio.CancelledError:
        leave_if_forked()
        raise
    except Exception as error:
        leave_if_forked()
        return _raised(error)
    leave_if_forked()
    return _encoded(value)


def run_anywhere(
    function: Callable[..., Any],
    args: dict[str, Any],
    is_async: bool,
    task: TaskContext | None = None,
    middleware: Sequence[Middleware] = (),
) -> TryResult:
    """Run a plain or an ``async def`` function synchronously (eager mode)."""
    if not is_async:
        return run_call(function, args, task, middleware)
    try:
        return asyncio.run(run_coroutine(function, args, task, middleware))
    except BaseException as error:
        return _raised(error)


def to_message(result: TryResult) -> list[Any]:
    """A result as JSON-ready data, for the pipe of a child process (never pickle)."""
    return [type(result).__name__, *result.__dict__.values()]


_KINDS: dict[str, type[Any]] = {kind.__name__: kind for kind in
                                (Returned, Raised, RetryRequested, Unserializable, TimedOut,
                                 Crashed, Stopped, TooLarge)}  # fmt: skip


def from_message(message: list[Any]) -> TryResult:
    kind, *values = message
    result: TryResult = _KINDS[kind](*values)
    return result
