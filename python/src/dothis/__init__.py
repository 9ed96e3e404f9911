"""dothis: a task queue with a written, language-neutral Redis protocol.

from dothis import Queue
Queue("dothis").enqueue("echo", text="ooh yeeah").wait(timeout=10)

The public names are resolved at their first use (PEP 562): ``import dothis`` loads nothing but
this file, the version and the exceptions, so a producer never pays for the worker, and nobody
pays for redis-py before a name that needs it is used. ``from dothis import Queue`` imports only
what Queue needs.
"""

from __future__ import annotations

# The exceptions are imported at once (they import nothing): code that catches them, and
# vars(dothis), find them all.
from dothis.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    DependencyError,
    DothisError,
    InvalidArguments,
    InvalidUrl,
    PermissionDenied,
    QueueClosed,
    ReadOnlyRedis,
    RegistryError,
    TaskExists,
    TaskFailed,
    TaskNotFound,
    WaitTimeout,
)
from dothis.version import __version__

# Not typing.TYPE_CHECKING: even `typing` is not imported by ``import dothis`` (mypy and IDEs
# read a TYPE_CHECKING of one's own the same way).
TYPE_CHECKING = False
if TYPE_CHECKING:  # what mypy and IDEs see; at run time __getattr__ below imports them
    from typing import Any

    from dothis.engine.context import TaskContext, current_task, progress
    from dothis.engine.registry import Registry, default_registry
    from dothis.engine.tries import Retry
    from dothis.producer.decorators import (
        TaskFunction,
        cron,
        middleware,
        on_shutdown,
        on_startup,
        periodic,
        task,
    )
    from dothis.producer.queue import Call, Queue, set_always_eager
    from dothis.producer.task import Task
    from dothis.wire.protocol import PROTOCOL_VERSION, ErrorCode, Outcome, RejectCode, State
    from dothis.wire.records import TaskInfo
    from dothis.wire.shards import Shards
    from dothis.worker import Worker, WorkerOptions

# The public names, by the module that defines each.
_MODULES: dict[str, tuple[str, ...]] = {
    "dothis.engine.context": ("TaskContext", "current_task", "progress"),
    "dothis.engine.registry": ("Registry", "default_registry"),
    "dothis.engine.tries": ("Retry",),
    "dothis.producer.decorators": (
        "TaskFunction", "cron", "middleware", "on_shutdown", "on_startup", "periodic", "task",
    ),
    "dothis.producer.queue": ("Call", "Queue", "set_always_eager"),
    "dothis.producer.task": ("Task",),
    "dothis.wire.protocol": ("PROTOCOL_VERSION", "ErrorCode", "Outcome", "RejectCode", "State"),
    "dothis.wire.records": ("TaskInfo",),
    "dothis.wire.shards": ("Shards",),
    "dothis.worker": ("Worker", "WorkerOptions"),
}  # fmt: skip
_ORIGINS = {name: module for module, names in _MODULES.items() for name in names}


def __getattr__(name: str) -> Any:
    """A public name, imported from its module at its first use and kept here after it."""
    origin = _ORIGINS.get(name)
    if origin is None:
        raise AttributeError(f"module 'dothis' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(origin), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_ORIGINS} - {"TYPE_CHECKING"})


__all__ = [
    "PROTOCOL_VERSION",
    "AuthenticationFailed",
    "Call",
    "ConnectionFailed",
    "DependencyError",
    "DothisError",
    "ErrorCode",
    "InvalidArguments",
    "InvalidUrl",
    "Outcome",
    "PermissionDenied",
    "Queue",
    "QueueClosed",
    "ReadOnlyRedis",
    "Registry",
    "RegistryError",
    "RejectCode",
    "Retry",
    "Shards",
    "State",
    "Task",
    "TaskContext",
    "TaskExists",
    "TaskFailed",
    "TaskFunction",
    "TaskInfo",
    "TaskNotFound",
    "WaitTimeout",
    "Worker",
    "WorkerOptions",
    "__version__",
    "cron",
    "current_task",
    "default_registry",
    "middleware",
    "on_shutdown",
    "on_startup",
    "periodic",
    "progress",
    "set_always_eager",
    "task",
]
