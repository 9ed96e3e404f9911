"""Wire constants of protocol v1: key names, states, outcomes, codes, limits and defaults.

Every value here equals schema/protocol.json (a unit test checks it). Key names are built here and
nowhere else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

PROTOCOL_VERSION = 1


class State(StrEnum):
    WAITING = "waiting"
    PENDING = "pending"
    SCHEDULED = "scheduled"
    EXECUTING = "executing"
    FINISHED = "finished"


class Outcome(StrEnum):
    SUCCESSFUL = "successful"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


# release.lua's parent result for a parent whose hash is gone (SPEC.md 5.13): the child fails.
PARENT_VANISHED = "vanished"


class ErrorCode(StrEnum):
    EXCEPTION = "exception"
    MISSING_FUNCTION = "missing-function"
    UNKNOWN_FUNCTION = "unknown-function"
    MALFORMED_ARGS = "malformed-args"
    ARGS_NOT_OBJECT = "args-not-object"
    BAD_ARGUMENTS = "bad-arguments"
    INVALID_STATE = "invalid-state"
    INVALID_ENCODING = "invalid-encoding"
    INVALID_FIELD = "invalid-field"
    TOO_LARGE = "too-large"
    UNSUPPORTED_PROTOCOL = "unsupported-protocol"
    UNSERIALIZABLE_RESULT = "unserializable-result"
    WORKER_LOST = "worker-lost"
    TIMEOUT = "timeout"
    CRASHED = "crashed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    DEPENDENCY_FAILED = "dependency-failed"


class RejectCode(StrEnum):
    MISSING_HASH = "missing-hash"
    WRONG_TYPE = "wrong-type"
    INVALID_ID = "invalid-id"


class Field(StrEnum):
    FUNCTION = "function"
    STATE = "state"
    ARGS = "args"
    ATTEMPTS = "attempts"
    TIMEOUT = "timeout"
    TTL = "ttl"
    RESULT_TTL = "result-ttl"
    FAILURE_TTL = "failure-ttl"
    DEPENDS_ON = "depends-on"
    WAITING_FOR = "waiting-for"
    ON_SUCCESS = "on-success"
    ON_FAILURE = "on-failure"
    CALLBACK_OF = "callback-of"
    DESCRIPTION = "description"
    TRACEPARENT = "traceparent"
    TRACESTATE = "tracestate"
    PROTOCOL = "protocol"
    PENDING_CREATED = "pending-created"
    EXECUTING_CREATED = "executing-created"
    WORKER = "worker"
    CLAIMS = "claims"
    LOSSES = "losses"
    LEASE_EXPIRES = "lease-expires"
    RETRIES = "retries"
    SCHEDULED_FOR = "scheduled-for"
    CANCEL_REQUESTED = "cancel-requested"
    PROGRESS = "progress"
    RESULT_VALUE = "result-value"
    RESULT = "result"
    FINISHED_CREATED = "finished-created"
    ERROR_CODE = "error-code"
    ERROR_REASON = "error-reason"
    ERROR_EXCEPTION = "error-exception"


KEY_TEMPLATES = {
    "task": "<queue>:task:<id>",
    "pending": "<queue>:pending",
    "executing": "<queue>:executing",
    "results": "<queue>:results",
    "outcomes": "<queue>:outcomes",
    "worker": "<queue>:worker:<worker>",
    "rejected": "<queue>:rejected",
    "scheduled": "<queue>:scheduled",
    "failed": "<queue>:failed",
    "succeeded": "<queue>:succeeded",
    "dependents": "<queue>:dependents:<id>",
    "releasing": "<queue>:releasing",
    "periodic": "<queue>:periodic",
    "workers": "<queue>:workers",
    "waiting": "<queue>:waiting",
    "progress": "<queue>:progress",
}

# The registry of queues (SPEC.md 2.3): a key of no queue.
QUEUES_REGISTRY = "dothis.queues"

ID_MAX_BYTES = 256
QUEUE_MAX_BYTES = 128
JSON_MAX_DEPTH = 64
# The outcome fields an outcome message carries at most, in bytes (SPEC.md 6.1; lib/ending.lua).
OUTCOME_MESSAGE_MAX_BYTES = 16384

DEFAULT_LEASE_MS = 15_000
DEFAULT_HEARTBEAT_MS = 5_000
DEFAULT_REAP_MS = 5_000
DEFAULT_MAX_CLAIMS = 3
DEFAULT_MAX_VALUE_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_FIELDS = 256
DEFAULT_REJECTED_MAX = 10_000
DEFAULT_RETRY_BASE_MS = 1_000
DEFAULT_RETRY_MAX_MS = 300_000
DEFAULT_SCHEDULE_MS = 500
DEFAULT_RESULT_TTL = 86_400
DEFAULT_FAILURE_TTL = 604_800

DEFAULT_QUEUE = "dothis"

# Whitespace and control characters are never part of an id, a queue name or a worker id.
_FORBIDDEN = re.compile(r"[\s\x00-\x1f\x7f]")


def name_problem(value: str, what: str, max_bytes: int) -> str | None:
    """Why ``value`` cannot be an id / queue name / worker id, or None when it can."""
    if not value:
        return f"{what} is empty"
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        return f"{what} is {size} bytes long (limit {max_bytes})"
    if _FORBIDDEN.search(value):
        return f"{what} contains whitespace or control characters"
    return None


def check_name(value: str, what: str, max_bytes: int = ID_MAX_BYTES) -> str:
    """Return ``value`` when it is a valid name, else raise ValueError naming the problem."""
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, not {type(value).__name__}")
    problem = name_problem(value, what, max_bytes)
    if problem:
        raise ValueError(problem)
    return value


@dataclass(frozen=True)
class Keys:
    """Every Redis key and channel of one queue."""

    queue: str

    def __post_init__(self) -> None:
        check_name(self.queue, "queue name", QUEUE_MAX_BYTES)

    @property
    def pending(self) -> str:
        return f"{self.queue}:pending"

    @property
    def executing(self) -> str:
        return f"{self.queue}:executing"

    @property
    def results(self) -> str:
        return f"{self.queue}:results"

    @property
    def outcomes(self) -> str:
        return f"{self.queue}:outcomes"

    @property
    def rejected(self) -> str:
        return f"{self.queue}:rejected"

    @property
    def scheduled(self) -> str:
        return f"{self.queue}:scheduled"

    @property
    def failed(self) -> str:
        return f"{self.queue}:failed"

    @property
    def succeeded(self) -> str:
        return f"{self.queue}:succeeded"

    @property
    def releasing(self) -> str:
        return f"{self.queue}:releasing"

    @property
    def waiting(self) -> str:
        return f"{self.queue}:waiting"

    @property
    def progress(self) -> str:
        return f"{self.queue}:progress"

    @property
    def periodic(self) -> str:
        return f"{self.queue}:periodic"

    @property
    def workers(self) -> str:
        """The registry of the queue's workers (SPEC.md 9.1)."""
        return f"{self.queue}:workers"

    def dependents(self, task_id: str) -> str:
        return f"{self.queue}:dependents:{task_id}"

    @property
    def task_prefix(self) -> str:
        return f"{self.queue}:task:"

    def task(self, task_id: str) -> str:
        return f"{self.queue}:task:{task_id}"

    def worker(self, worker_id: str) -> str:
        return f"{self.queue}:worker:{worker_id}"

    def parse_entry(self, entry: bytes) -> tuple[str | None, str]:
        """Read a pending/executing entry: (task id, "") or (None, why it is not a valid id).

        An entry is a bare id or the full-key form ``<queue>:task:<id>``.
        """
        try:
            text = entry.decode("utf-8")
        except UnicodeDecodeError:
            return None, "the entry is not valid UTF-8"
        if text.startswith(self.task_prefix):
            text = text[len(self.task_prefix) :]
        problem = name_problem(text, "the task id", ID_MAX_BYTES)
        if problem:
            return None, problem
        return text, ""
