"""The producer: a Queue writes tasks (enqueue.lua) and hands out Task handles."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import redis
from jsonschema import Draft202012Validator

from dothis import codec
from dothis.connection import connect, resolve_url, translate_errors
from dothis.errors import InvalidArguments, QueueClosed, TaskExists
from dothis.protocol import (
    DEFAULT_QUEUE,
    ID_MAX_BYTES,
    Field,
    Keys,
    State,
    check_name,
    now_iso,
)
from dothis.registry import function_name
from dothis.resources import schema
from dothis.results import ResultListener
from dothis.task import Task, TaskInfo

FunctionRef = str | Callable[..., Any]

ENQUEUE_BATCH = 1000


@dataclass(frozen=True)
class Call:
    """One task for ``enqueue_many``: a function, its named arguments, an optional custom id."""

    function: FunctionRef
    args: Mapping[str, Any] = field(default_factory=dict)
    task_id: str | None = None
    attempts: int | None = None
    timeout: float | None = None


def _args_validator() -> Draft202012Validator:
    return Draft202012Validator(schema("args.schema.json"))


def _encode_args(args: Mapping[str, Any]) -> str:
    if not isinstance(args, Mapping):
        raise InvalidArguments(
            f"args must be a mapping of names to values, not {type(args).__name__}"
        )
    for name, value in args.items():
        if not isinstance(name, str):
            raise InvalidArguments(f"argument name {name!r} is not a string")
        try:
            codec.encode(value)
        except (TypeError, ValueError) as error:
            raise InvalidArguments(f"argument {name!r} has no JSON form: {error}") from error
    plain = dict(args)
    errors = list(_VALIDATOR.iter_errors(plain))
    if errors:
        raise InvalidArguments(f"args do not match args.schema.json: {errors[0].message}")
    return codec.encode(plain)


_VALIDATOR = _args_validator()


class Queue:
    """A named queue on one Redis server.

    >>> queue = Queue("dothis", url="redis://127.0.0.1:6379/0")
    >>> queue.enqueue("echo", text="ooh yeeah").wait(timeout=10)
    'ooh yeeah'
    """

    def __init__(self, name: str = DEFAULT_QUEUE, url: str | None = None) -> None:
        try:
            self.keys = Keys(name)
        except ValueError as error:
            raise InvalidArguments(str(error)) from error
        self.name = name
        self.url = resolve_url(url)
        self._redis: redis.Redis | None = connect(self.url)
        from dothis.scripts import Scripts

        self._scripts = Scripts(self._redis)
        self._results: ResultListener | None = None

    def __repr__(self) -> str:
        return f"Queue({self.name!r})"

    @property
    def redis(self) -> redis.Redis:
        if self._redis is None:
            raise QueueClosed(f"queue {self.name!r} is closed; create a new Queue to go on")
        return self._redis

    @property
    def results(self) -> ResultListener:
        """The queue's one shared subscription to its results channel."""
        self.redis  # noqa: B018  (raises QueueClosed)
        if self._results is None:
            self._results = ResultListener(lambda: connect(self.url), self.keys.results)
        return self._results

    def _fields(
        self,
        function: FunctionRef,
        args: Mapping[str, Any],
        attempts: int | None = None,
        timeout: float | None = None,
    ) -> list[str]:
        name = function_name(function)
        if not name:
            raise InvalidArguments("function name is empty")
        fields = [
            Field.FUNCTION, name,
            Field.STATE, State.PENDING,
            Field.ARGS, _encode_args(args),
            Field.PENDING_CREATED, now_iso(),
        ]  # fmt: skip
        if attempts is not None:
            if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
                raise InvalidArguments(f"attempts must be a positive int, not {attempts!r}")
            fields += [Field.ATTEMPTS, str(attempts)]
        if timeout is not None:
            if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
                raise InvalidArguments(f"timeout must be a positive number of seconds, not "
                                       f"{timeout!r}")  # fmt: skip
            fields += [Field.TIMEOUT, format(float(timeout), ".6f").rstrip("0").rstrip(".")]
        return fields

    def _task_id(self, task_id: str | None) -> str:
        if task_id is None:
            import uuid

            return str(uuid.uuid4())
        try:
            check_name(task_id, "task id", ID_MAX_BYTES)
        except ValueError as error:
            raise InvalidArguments(str(error)) from error
        if task_id.startswith(self.keys.task_prefix):
            raise InvalidArguments(
                f"task id {task_id!r} starts with {self.keys.task_prefix!r}, which reads as the "
                "full-key form of another id; pass the bare id"
            )
        return task_id

    def enqueue(
        self,
        function: FunctionRef,
        /,
        *,
        task_id: str | None = None,
        attempts: int | None = None,
        timeout: float | None = None,
        **args: Any,
    ) -> Task:
        """Queue ``function(**args)``.

        ``task_id`` sets a custom id (TaskExists if it is taken); ``attempts`` is the total number
        of tries (retries with backoff after a failure); ``timeout`` stops a try after that many
        seconds. Arguments named like these options go through ``enqueue_call``.
        """
        return self.enqueue_call(function, args, task_id=task_id, attempts=attempts,
                                 timeout=timeout)  # fmt: skip

    def enqueue_call(
        self,
        function: FunctionRef,
        args: Mapping[str, Any] | None = None,
        *,
        task_id: str | None = None,
        attempts: int | None = None,
        timeout: float | None = None,
    ) -> Task:
        """Queue ``function`` with ``args`` as a mapping; one round trip to Redis."""
        task_id = self._task_id(task_id)
        fields = self._fields(function, args or {}, attempts, timeout)
        key = self.keys.task(task_id)
        client = self.redis
        with translate_errors(self.url):
            created = self._scripts.enqueue(
                keys=[key, self.keys.pending], args=[task_id, *fields], client=client
            )
        if not created:
            raise TaskExists(task_id, key)
        return Task(self, task_id)

    def enqueue_many(
        self, calls: Iterable[Call | tuple[FunctionRef, Mapping[str, Any]]]
    ) -> list[Task]:
        """Queue many tasks, pipelined in batches (one round trip per 1,000 tasks).

        Every call is validated before anything is written. A custom id that is taken raises
        TaskExists after the others were queued.
        """
        prepared: list[tuple[str, list[str]]] = []
        for item in calls:
            call = item if isinstance(item, Call) else Call(*item)
            fields = self._fields(call.function, call.args, call.attempts, call.timeout)
            prepared.append((self._task_id(call.task_id), fields))
        taken: list[str] = []
        with translate_errors(self.url):
            for start in range(0, len(prepared), ENQUEUE_BATCH):
                batch = prepared[start : start + ENQUEUE_BATCH]
                pipe = self.redis.pipeline(transaction=False)
                for task_id, fields in batch:
                    self._scripts.enqueue(
                        keys=[self.keys.task(task_id), self.keys.pending],
                        args=[task_id, *fields],
                        client=pipe,
                    )
                for (task_id, _), created in zip(batch, pipe.execute(), strict=True):
                    if not created:
                        taken.append(task_id)
        if taken:
            raise TaskExists(taken[0], self.keys.task(taken[0]))
        return [Task(self, task_id) for task_id, _ in prepared]

    def read_task(self, task_id: str) -> TaskInfo | None:
        with translate_errors(self.url):
            raw = cast(dict[bytes, bytes], self.redis.hgetall(self.keys.task(task_id)))
        return TaskInfo.from_hash(task_id, raw) if raw else None

    def fetch(self, task_id: str) -> Task | None:
        """The task with this id, or None when it has no hash."""
        with translate_errors(self.url):
            exists = self.redis.exists(self.keys.task(task_id))
        return Task(self, task_id) if exists else None

    def failed(self, start: int = 0, count: int = 100) -> list[Task]:
        """Failed tasks (the dead letters), newest first, one page."""
        with translate_errors(self.url):
            ids = cast(
                list[bytes], self.redis.zrevrange(self.keys.failed, start, start + count - 1)
            )
        return [Task(self, raw.decode("utf-8", "replace")) for raw in ids]

    def requeue(self, task_id: str) -> bool:
        """Give a failed task a fresh start (requeue.lua); False if it is not in the failed set."""
        with translate_errors(self.url):
            done = self._scripts.requeue(
                keys=[self.keys.task(task_id), self.keys.failed, self.keys.pending],
                args=[task_id], client=self.redis,
            )  # fmt: skip
        return bool(done == 1)

    def __len__(self) -> int:
        """How many entries wait in the pending list."""
        with translate_errors(self.url):
            return int(self.redis.llen(self.keys.pending))

    def ping(self) -> None:
        """Raise ConnectionFailed (naming the URL and the fix) unless Redis answers."""
        with translate_errors(self.url):
            self.redis.ping()

    def close(self) -> None:
        if self._results is not None:
            self._results.close()
            self._results = None
        if self._redis is not None:
            self._redis.close()
            self._redis = None

    def __enter__(self) -> Queue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
