"""Every error dothis raises derives from DothisError and carries a stable ``code``.

The codes are the same in the Node client (schema/client-errors.json is the table). Each message
names the cause and the fix.
"""

from __future__ import annotations


class DothisError(Exception):
    """Root of every dothis error."""

    code = "dothis-error"


class ConnectionFailed(DothisError, ConnectionError):
    """Redis cannot be reached; the message names the URL and the fix."""

    code = "connection-failed"


class AuthenticationFailed(ConnectionFailed):
    """Redis wants a password that was not given, or refused the one given."""

    code = "authentication-failed"


class ReadOnlyRedis(DothisError):
    """The Redis server is a read-only replica; a worker needs the primary."""

    code = "read-only-redis"


class PermissionDenied(DothisError):
    """The Redis ACL user may not run a command, or use a key or a channel, that the operation
    needs; the message names what was refused and the rule to add (SPEC.md ACL)."""

    code = "permission-denied"

    def __init__(
        self, message: str, *, command: str | None = None, rules: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message)
        self.command = command
        self.rules = rules


class InvalidUrl(DothisError, ValueError):
    """The Redis URL cannot be parsed, or names a database the server does not have."""

    code = "invalid-url"


class InvalidArguments(DothisError, ValueError):
    """A task's function name, arguments or options cannot be written; the message names which."""

    code = "invalid-arguments"


class TaskExists(DothisError):
    """A task with this id already exists in the queue and has not finished."""

    code = "task-exists"

    def __init__(self, task_id: str, key: str) -> None:
        super().__init__(f"a task with id {task_id!r} already exists ({key}); choose another id")
        self.task_id = task_id


class TaskNotFound(DothisError, LookupError):
    """No task hash with this id exists in the queue."""

    code = "task-not-found"

    def __init__(self, task_id: str, queue: str) -> None:
        super().__init__(f"no task {task_id!r} in queue {queue!r}: check the id and the queue")
        self.task_id = task_id


class QueueClosed(DothisError):
    """The queue was closed; create a new Queue to go on."""

    code = "queue-closed"


class WaitTimeout(DothisError, TimeoutError):
    """The task did not finish within the timeout; it is untouched and may still run."""

    code = "wait-timeout"


class TaskFailed(DothisError):
    """The task ended with an outcome other than successful; ``code`` is its ``error-code``."""

    code = "task-failed"

    def __init__(self, task_id: str, code: str, reason: str, exception: str) -> None:
        super().__init__(f"task {task_id} failed ({code}): {reason}")
        self.task_id = task_id
        self.code = code
        self.reason = reason
        self.exception = exception


class RegistryError(DothisError):
    """A function could not be registered (a name taken twice, an invalid name)."""

    code = "registry-error"


class DependencyError(DothisError):
    """A task was not enqueued: a task it depends on failed, was cancelled, or does not exist.

    ``code`` is ``dependency-failed`` or ``dependency-missing``.
    """

    code = "dependency-failed"

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.code = "dependency-missing" if missing else "dependency-failed"
