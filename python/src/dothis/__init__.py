"""dothis: a task queue with a written, language-neutral Redis protocol.

from dothis import Queue
Queue("dothis").enqueue("echo", text="ooh yeeah").wait(timeout=10)
"""

from dothis.engine.context import TaskContext, current_task, progress
from dothis.engine.registry import Registry, default_registry
from dothis.engine.tries import Retry
from dothis.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    DependencyError,
    DothisError,
    InvalidArguments,
    InvalidUrl,
    QueueClosed,
    ReadOnlyRedis,
    RegistryError,
    TaskExists,
    TaskFailed,
    TaskNotFound,
    WaitTimeout,
)
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
from dothis.version import __version__
from dothis.wire.protocol import PROTOCOL_VERSION, ErrorCode, Outcome, RejectCode, State
from dothis.wire.records import TaskInfo
from dothis.worker import Worker, WorkerOptions

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
    "Queue",
    "QueueClosed",
    "ReadOnlyRedis",
    "Registry",
    "RegistryError",
    "RejectCode",
    "Retry",
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
