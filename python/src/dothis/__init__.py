"""dothis: a task queue with a written, language-neutral Redis protocol.

from dothis import Queue
Queue("dothis").enqueue("echo", text="ooh yeeah").wait(timeout=10)
"""

from dothis.errors import (
    ConnectionFailed,
    DependencyError,
    DothisError,
    InvalidArguments,
    QueueClosed,
    RegistryError,
    TaskExists,
    TaskFailed,
    WaitTimeout,
)
from dothis.pool import Retry
from dothis.producer import Call, Queue
from dothis.protocol import PROTOCOL_VERSION, ErrorCode, Outcome, RejectCode, State
from dothis.registry import Registry, TaskFunction, cron, default_registry, periodic, task
from dothis.task import Task, TaskInfo
from dothis.worker import Worker, WorkerOptions

__version__ = "1.0.0"

__all__ = [
    "PROTOCOL_VERSION",
    "Call",
    "ConnectionFailed",
    "DependencyError",
    "DothisError",
    "ErrorCode",
    "InvalidArguments",
    "Outcome",
    "Queue",
    "QueueClosed",
    "Registry",
    "RegistryError",
    "RejectCode",
    "Retry",
    "State",
    "Task",
    "TaskExists",
    "TaskFailed",
    "TaskFunction",
    "TaskInfo",
    "WaitTimeout",
    "Worker",
    "WorkerOptions",
    "__version__",
    "cron",
    "default_registry",
    "periodic",
    "task",
]
