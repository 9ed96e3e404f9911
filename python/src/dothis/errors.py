"""Every error dothis raises derives from DothisError."""

from __future__ import annotations


class DothisError(Exception):
    """Root of every dothis error."""


class ConnectionFailed(DothisError, ConnectionError):
    """Redis cannot be reached; the message names the URL and the fix."""


class InvalidArguments(DothisError, ValueError):
    """A task's function name or arguments cannot be written; the message names the field."""


class TaskExists(DothisError):
    """A task with this id already exists in the queue."""

    def __init__(self, task_id: str, key: str) -> None:
        super().__init__(f"a task with id {task_id!r} already exists ({key}); choose another id")
        self.task_id = task_id


class QueueClosed(DothisError):
    """The queue was closed; create a new Queue to go on."""


class WaitTimeout(DothisError, TimeoutError):
    """The task did not finish within the timeout."""


class TaskFailed(DothisError):
    """The task finished with result ``failed``; carries the hash's error fields."""

    def __init__(self, task_id: str, code: str, reason: str, exception: str) -> None:
        super().__init__(f"task {task_id} failed ({code}): {reason}")
        self.task_id = task_id
        self.code = code
        self.reason = reason
        self.exception = exception


class RegistryError(DothisError):
    """A function could not be registered (a name taken twice, an invalid name)."""


class DependencyError(DothisError):
    """A task was not enqueued: a task it depends on failed, was cancelled, or does not exist."""
