"""The producer: a Queue writes tasks (enqueue.lua) and hands out Task handles."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any, cast

import redis

from dothis import codec
from dothis.connection import connect, resolve_url, translate_errors
from dothis.eager import Eager
from dothis.errors import DependencyError, InvalidArguments, QueueClosed, TaskExists
from dothis.inspection import Inspection
from dothis.options import OPTION_NAMES, TaskOptions
from dothis.protocol import (
    DEFAULT_QUEUE,
    ID_MAX_BYTES,
    Field,
    Keys,
    State,
    check_name,
    now_iso,
)
from dothis.registry import Registry, function_name
from dothis.resources import schema
from dothis.results import ResultListener
from dothis.task import Task, TaskInfo

FunctionRef = str | Callable[..., Any]

ENQUEUE_BATCH = 1000


@dataclass(frozen=True)
class Call:
    """One task for ``enqueue_many``: a function, its named arguments and its options."""

    function: FunctionRef
    args: Mapping[str, Any] = field(default_factory=dict)
    task_id: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


@cache
def _args_validator() -> Any:
    # Imported on first use: jsonschema takes most of a second to import.
    from jsonschema import Draft202012Validator

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
    errors = list(_args_validator().iter_errors(plain))
    if errors:
        raise InvalidArguments(f"args do not match args.schema.json: {errors[0].message}")
    return codec.encode(plain)


class Queue(Inspection):
    """A named queue on one Redis server.

    >>> queue = Queue("dothis", url="redis://127.0.0.1:6379/0")
    >>> queue.enqueue("echo", text="ooh yeeah").wait(timeout=10)
    'ooh yeeah'
    """

    def __init__(
        self,
        name: str = DEFAULT_QUEUE,
        url: str | None = None,
        *,
        is_async: bool = True,
        registry: Registry | None = None,
    ) -> None:
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
        # is_async=False (eager mode, for tests): enqueue runs the function here and now.
        self.eager = None if is_async else Eager(self, registry)

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

    def _prepare(
        self, function: FunctionRef, args: Mapping[str, Any], options: TaskOptions
    ) -> tuple[list[str], list[str]]:
        """(keys, argv) of enqueue.lua for one task, every part checked."""
        name = function_name(function)
        if not name:
            raise InvalidArguments("function name is empty")
        task_id = self._task_id(options.task_id)
        encoded = _encode_args(args)
        created = now_iso()
        placement, extra, parents = options.placement_and_fields()
        fields = [
            Field.FUNCTION, name,
            Field.STATE, State.PENDING,
            Field.ARGS, encoded,
            Field.PENDING_CREATED, created,
            *extra,
        ]  # fmt: skip
        keys = [self.keys.task(task_id), self.keys.pending, self.keys.scheduled]
        for parent in parents:
            keys += [self.keys.task(parent), self.keys.dependents(parent)]
        return keys, [task_id, placement, "1", str(len(parents)), *parents, *fields]

    def _task_id(self, task_id: str | None) -> str:
        if task_id is None:
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
        delay: float | None = None,
        at: datetime | None = None,
        at_front: bool = False,
        depends_on: str | Task | Iterable[str | Task] | None = None,
        ttl: int | None = None,
        result_ttl: int | None = None,
        failure_ttl: int | None = None,
        on_success: FunctionRef | None = None,
        on_failure: FunctionRef | None = None,
        description: str | None = None,
        **args: Any,
    ) -> Task:
        """Queue ``function(**args)``; one round trip to Redis.

        Options (their names are reserved; pass arguments named like them to ``enqueue_call``):
        ``task_id`` a custom id (TaskExists while a task with it is unfinished); ``attempts``
        total tries; ``timeout`` seconds per try; ``delay`` seconds or ``at`` a datetime to
        start no earlier; ``at_front`` to run next; ``depends_on`` tasks that must succeed
        first; ``ttl`` seconds it may wait to start before it expires; ``result_ttl`` /
        ``failure_ttl`` seconds its hash is kept after it ends (-1: forever); ``on_success`` /
        ``on_failure`` functions to run afterwards; ``description`` free text.
        """
        options = TaskOptions(
            task_id, attempts, timeout, delay, at, at_front, depends_on, ttl, result_ttl,
            failure_ttl, on_success, on_failure, description,
        )  # fmt: skip
        return self._enqueue(function, args, options)

    def enqueue_call(
        self, function: FunctionRef, args: Mapping[str, Any] | None = None, **options: Any
    ) -> Task:
        """Queue ``function`` with ``args`` as a mapping; ``options`` as for ``enqueue``."""
        unknown = set(options) - set(OPTION_NAMES)
        if unknown:
            raise InvalidArguments(f"unknown option(s): {', '.join(sorted(unknown))}")
        return self._enqueue(function, args or {}, TaskOptions(**options))

    def _enqueue(
        self, function: FunctionRef, args: Mapping[str, Any], options: TaskOptions
    ) -> Task:
        keys, argv = self._prepare(function, args, options)
        client = self.redis
        if self.eager is not None:
            return self.eager.run(keys, argv)
        with translate_errors(self.url):
            created = self._scripts.enqueue(keys=keys, args=argv, client=client)
        return self._created(created, argv[0], options)

    def _created(self, created: int, task_id: str, options: TaskOptions) -> Task:
        if created == 0:
            raise TaskExists(task_id, self.keys.task(task_id))
        if created == -2:
            raise DependencyError(
                f"task {task_id} was not enqueued: a task it depends on "
                f"({', '.join(options.parents())}) finished without success"
            )
        if created == -3:
            raise DependencyError(
                f"task {task_id} was not enqueued: a task it depends on "
                f"({', '.join(options.parents())}) does not exist"
            )
        return Task(self, task_id)

    def enqueue_many(
        self, calls: Iterable[Call | tuple[FunctionRef, Mapping[str, Any]]]
    ) -> list[Task]:
        """Queue many tasks, pipelined in batches (one round trip per 1,000 tasks).

        Every call is validated before anything is written. A custom id that is taken raises
        TaskExists after the others were queued.
        """
        prepared: list[tuple[list[str], list[str], TaskOptions]] = []
        for item in calls:
            call = item if isinstance(item, Call) else Call(*item)
            options = TaskOptions(task_id=call.task_id, **call.options)
            prepared.append((*self._prepare(call.function, call.args, options), options))
        failures: list[tuple[int, str, TaskOptions]] = []
        with translate_errors(self.url):
            for start in range(0, len(prepared), ENQUEUE_BATCH):
                batch = prepared[start : start + ENQUEUE_BATCH]
                pipe = self.redis.pipeline(transaction=False)
                for keys, argv, _ in batch:
                    self._scripts.enqueue(keys=keys, args=argv, client=pipe)
                for (_, argv, options), created in zip(batch, pipe.execute(), strict=True):
                    if created != 1:
                        failures.append((created, argv[0], options))
        for created, task_id, options in failures:
            self._created(created, task_id, options)
        return [Task(self, argv[0]) for _, argv, _ in prepared]

    def read_task(self, task_id: str) -> TaskInfo | None:
        with translate_errors(self.url):
            raw = cast(dict[bytes, bytes], self.redis.hgetall(self.keys.task(task_id)))
        return TaskInfo.from_hash(task_id, raw) if raw else None

    def fetch(self, task_id: str) -> Task | None:
        """The task with this id, or None when it has no hash."""
        with translate_errors(self.url):
            exists = self.redis.exists(self.keys.task(task_id))
        return Task(self, task_id) if exists else None

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


_shared: dict[tuple[str, str], Queue] = {}


def shared_queue(name: str | None = None, url: str | None = None) -> Queue:
    """One Queue per (name, url) for the process, used by ``TaskFunction.delay``."""
    key = (name or DEFAULT_QUEUE, resolve_url(url))
    queue = _shared.get(key)
    if queue is None or queue._redis is None:
        queue = _shared[key] = Queue(*key)
    return queue
