"""The producer: a Queue writes tasks (enqueue.lua) and hands out Task handles."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from dothis.engine.registry import Registry, function_name
from dothis.errors import DependencyError, InvalidArguments, QueueClosed, TaskExists
from dothis.producer.inspection import Inspection
from dothis.producer.options import OPTION_NAMES, Parents, TaskOptions
from dothis.producer.results import ResultListener
from dothis.producer.task import Task
from dothis.producer.tracing import trace_fields
from dothis.store.clock import measure
from dothis.store.connection import (
    SyncClient,
    connect,
    connect_node,
    resolve_url,
    translate_errors,
)
from dothis.store.execute import SyncStore
from dothis.store.leases import note_queues
from dothis.store.ops import Ops, ScriptCall
from dothis.store.replies import Enqueued
from dothis.store.topology import check_queues, with_settings
from dothis.wire import codec
from dothis.wire.clock import now_iso
from dothis.wire.protocol import DEFAULT_QUEUE, ID_MAX_BYTES, Field, Keys, State, check_name
from dothis.wire.records import TaskInfo

if TYPE_CHECKING:
    from dothis.producer.eager import Eager

FunctionRef = str | Callable[..., Any]

ENQUEUE_BATCH = 1000
# What Task.wait reads of a hash: enough to tell whether it ended, and how.
OUTCOME_FIELDS = [
    Field.STATE.value, Field.RESULT.value, Field.RESULT_VALUE.value, Field.ERROR_CODE.value,
    Field.ERROR_REASON.value, Field.ERROR_EXCEPTION.value,
]  # fmt: skip


@dataclass(frozen=True)
class Call:
    """One task for ``enqueue_many``: a function, its named arguments and its options."""

    function: FunctionRef
    args: Mapping[str, Any] = field(default_factory=dict)
    task_id: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


def _encode_args(args: Mapping[str, Any]) -> str:
    if type(args) is dict and not args:  # no arguments (the common case): nothing to check
        return "{}"
    if not isinstance(args, Mapping):
        raise InvalidArguments(
            f"args must be a mapping of names to values, not {type(args).__name__}"
        )
    for name in args:
        if not isinstance(name, str):
            raise InvalidArguments(f"argument name {name!r} is not a string")
    # args.schema.json asks for a JSON object and nothing more (a unit test holds it to that), so
    # these checks are the whole schema; jsonschema is not imported (it takes seconds).
    try:
        # once: the value of each argument is encoded here
        return codec.encode_object(args if type(args) is dict else dict(args))
    except (TypeError, ValueError):
        for name, value in args.items():  # only on failure: name the argument at fault
            try:
                codec.encode(value)
            except (TypeError, ValueError) as error:
                raise InvalidArguments(f"argument {name!r} has no JSON form: {error}") from error
        raise


# The first digit of a version 4 UUID's fourth group: the variant bits (10) and two random bits,
# those of the random digit in its place.
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def new_task_id() -> str:
    """A random id: the text of a version 4 UUID, as ``str(uuid.uuid4())`` writes it, with the
    same 122 random bits from ``os.urandom`` in a third of the time (one is made per task)."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


# The options of a task that sets none (``TaskOptions()``, shared: it is frozen): the back of the
# pending list, no field beyond the base ones, no parents.
_PLAIN = TaskOptions()
_CREATED = Enqueued.CREATED
# A task checked and ready to write: (task id, function name, encoded args, placement, the
# fields after the base ones, parent ids, trace fields).
_Prepared = tuple[str, str, str, str, tuple[str, ...], tuple[str, ...], tuple[str, ...]]
# The names and the state of a task's base fields, read once (an enum member costs a lookup).
_FUNCTION, _STATE, _ARGS, _PENDING_CREATED, _PENDING = (
    Field.FUNCTION, Field.STATE, Field.ARGS, Field.PENDING_CREATED, State.PENDING
)  # fmt: skip


class Queue(Inspection):
    """A named queue on one Redis server.

    >>> queue = Queue("dothis", url="redis://127.0.0.1:6379/0")
    >>> queue.enqueue("echo", text="ooh yeeah").wait(timeout=10)
    'ooh yeeah'

    ``is_async=False`` is eager mode, for tests: ``enqueue`` runs the task in this process, with the
    worker's own operations and decisions, before it returns. ``shards=N`` makes it one logical
    queue over N shards (a ShardedQueue, SPEC.md 11.2).
    """

    # The class of ``shards=N``: ShardedQueue (producer/sharded.py, which the package imports)
    # names itself here as it is defined.
    _sharded: type[Queue] | None = None

    def __init_subclass__(cls, *, sharded: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if sharded:
            Queue._sharded = cls

    def __new__(cls, *args: Any, shards: int | None = None, **kwargs: Any) -> Queue:
        if shards is not None and cls is Queue and Queue._sharded is not None:
            return super().__new__(Queue._sharded)
        return super().__new__(cls)

    def __init__(
        self,
        name: str = DEFAULT_QUEUE,
        url: str | None = None,
        *,
        is_async: bool = True,
        registry: Registry | None = None,
        tls_ca: str | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        cluster: bool | None = None,
        shards: int | None = None,
        client: SyncClient | None = None,
    ) -> None:
        """``client``: a connection to share (the shards of a ShardedQueue share one)."""
        if shards is not None:  # ShardedQueue's own __init__ takes it
            raise InvalidArguments(f"{type(self).__name__} is one queue: shards=N needs Queue")
        try:
            self.keys = Keys(name)
        except ValueError as error:
            raise InvalidArguments(str(error)) from error
        self.name = name
        # TLS files and cluster mode travel in the URL (store/topology.py, docs/topology.md).
        self.url = with_settings(resolve_url(url), tls_ca=tls_ca, tls_cert=tls_cert,
                                 tls_key=tls_key, cluster=cluster)  # fmt: skip
        check_queues(self.url, [name])
        self.ops = Ops(self.keys)
        self._redis: SyncClient | None = client or connect(self.url)
        self._store = SyncStore(self._redis)
        self._results: ResultListener | None = None
        self._clock_checked = False
        self.eager: Eager | None = None
        if not is_async:  # eager mode brings the worker's flow in: imported only for it
            from dothis.producer.eager import Eager

            self.eager = Eager(self._store, self.ops, self.url, registry)

    def __repr__(self) -> str:
        return f"Queue({self.name!r})"

    @property
    def redis(self) -> SyncClient:
        if self._redis is None:
            raise QueueClosed(f"queue {self.name!r} is closed; create a new Queue to go on")
        return self._redis

    @property
    def store(self) -> SyncStore:
        self.redis  # noqa: B018  (raises QueueClosed)
        return self._store

    @property
    def results(self) -> ResultListener:
        """The queue's one shared subscription to its results channel."""
        self.redis  # noqa: B018  (raises QueueClosed)
        if self._results is None:
            self._results = ResultListener(lambda: connect_node(self.url), self.keys.results,
                                           self.keys.outcomes)  # fmt: skip
        return self._results

    def _check_clock(self) -> None:
        """Once, before the first enqueue: measure this machine's clock against Redis (SPEC.md
        9.8: delays and timestamps are written in Redis's time), and list the queue in the
        registry of queues (SPEC.md 2.3)."""
        if not self._clock_checked:
            with translate_errors(self.url):
                measure(self.store)
                note_queues(self.redis, [self.keys.queue])
            self._clock_checked = True

    def _request(
        self, function: FunctionRef, args: Mapping[str, Any], options: TaskOptions
    ) -> ScriptCall[Enqueued]:
        """The enqueue.lua call of one task, every part checked."""
        return self._script_call(self._prepare(function, args, options))

    def _prepare(
        self, function: FunctionRef, args: Mapping[str, Any], options: TaskOptions
    ) -> _Prepared:
        """Every check of one task, and what its enqueue.lua call is made of (``_script_call``).
        Strings and tuples: for a plain call, a tuple of strings, which the garbage collector soon
        stops tracking, so that the many tasks an ``enqueue_many`` holds until all are checked set
        off few full collections (it makes their calls one batch at a time)."""
        if not self._clock_checked:
            self._check_clock()
        name = function if type(function) is str else function_name(function)
        if not name:
            raise InvalidArguments("function name is empty")
        task_id = new_task_id() if options.task_id is None else self._task_id(options.task_id)
        encoded = _encode_args(args)
        if options is _PLAIN:
            return task_id, name, encoded, "back", (), (), tuple(trace_fields())
        placement, extra, parents = options.placement_and_fields()
        trace = tuple(trace_fields())
        return task_id, name, encoded, placement, tuple(extra), tuple(parents), trace

    def _script_call(self, prepared: _Prepared) -> ScriptCall[Enqueued]:
        """The enqueue.lua call of a prepared task; its ``pending-created`` is now."""
        task_id, name, encoded, placement, extra, parents, trace = prepared
        fields = [
            _FUNCTION, name,
            _STATE, _PENDING,
            _ARGS, encoded,
            _PENDING_CREATED, now_iso(),
            *extra,
            *trace,
        ]  # fmt: skip
        return self.ops.enqueue(task_id, placement, parents, fields,
                                into_executing=self.eager is not None)  # fmt: skip

    def _task_id(self, task_id: str) -> str:
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
        depends_on: Parents | None = None,
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
        if (task_id is None and attempts is None and timeout is None and delay is None
                and at is None and not at_front and depends_on is None and ttl is None
                and result_ttl is None and failure_ttl is None and on_success is None
                and on_failure is None and description is None):  # fmt: skip
            options = _PLAIN
        else:
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
        return self._enqueue(function, args or {}, TaskOptions(**options) if options else _PLAIN)

    def _enqueue(
        self, function: FunctionRef, args: Mapping[str, Any], options: TaskOptions
    ) -> Task:
        if self.eager is not None:
            options = self.eager.options(options)
        request = self._request(function, args, options)
        # Before the task exists: whether its announcement cannot be missed (Task.wait).
        mark = self._results.mark() if self._results is not None else None
        with translate_errors(self.url):
            created = self.store.run(request)
        self._check(created, request.args[0], options)
        if self.eager is not None:
            with translate_errors(self.url):
                self.eager.run(request.args[0])
        return Task(self, request.args[0], mark, fresh=options.task_id is None)

    def _check(self, created: Enqueued, task_id: str, options: TaskOptions) -> None:
        if created is _CREATED:
            return
        if created is Enqueued.EXISTS:
            raise TaskExists(task_id, self.keys.task(task_id))
        parents = ", ".join(options.parents())
        if created is Enqueued.PARENT_FAILED:
            raise DependencyError(f"task {task_id} was not enqueued: a task it depends on "
                                  f"({parents}) finished without success")  # fmt: skip
        if created is Enqueued.PARENT_MISSING:
            raise DependencyError(f"task {task_id} was not enqueued: a task it depends on "
                                  f"({parents}) does not exist", missing=True)  # fmt: skip

    def enqueue_many(
        self, calls: Iterable[Call | tuple[FunctionRef, Mapping[str, Any]]]
    ) -> list[Task]:
        """Queue many tasks, pipelined in batches (one round trip per 1,000 tasks).

        Every call is validated before anything is written. A custom id that is taken raises
        TaskExists after the others were queued.
        """
        prepared: list[_Prepared] = []
        options_of: list[TaskOptions] = []
        for item in calls:
            call = item if isinstance(item, Call) else Call(*item)
            if call.task_id is None and type(call.options) is dict and not call.options:
                options = _PLAIN  # what TaskOptions() would be, in eager mode too
            else:
                options = TaskOptions(task_id=call.task_id, **call.options)
                if self.eager is not None:
                    options = self.eager.options(options)
            prepared.append(self._prepare(call.function, call.args, options))
            options_of.append(options)
        if self.eager is not None:  # one at a time, each run before the next is queued
            return self._eager_many(prepared, options_of)
        failures: list[tuple[Enqueued, str, TaskOptions]] = []
        with translate_errors(self.url):
            for start in range(0, len(prepared), ENQUEUE_BATCH):
                # The calls of one batch at a time: made as it goes, dropped once it is answered.
                requests = [
                    self._script_call(task) for task in prepared[start : start + ENQUEUE_BATCH]
                ]
                replies = self.store.run_many(requests)
                for index, created in zip(
                    range(start, start + len(requests)), replies, strict=True
                ):
                    if created is not _CREATED:
                        if isinstance(created, Exception):
                            raise created
                        failures.append((created, prepared[index][0], options_of[index]))
        for created, task_id, options in failures:
            self._check(created, task_id, options)
        return [Task(self, task[0]) for task in prepared]

    def _eager_many(self, prepared: list[_Prepared], options_of: list[TaskOptions]) -> list[Task]:
        assert self.eager is not None
        tasks = []
        for task, options in zip(prepared, options_of, strict=True):
            request = self._script_call(task)
            with translate_errors(self.url):
                created = self.store.run(request)
                self._check(created, request.args[0], options)
                self.eager.run(request.args[0])
            tasks.append(Task(self, request.args[0]))
        return tasks

    def read_task(self, task_id: str) -> TaskInfo | None:
        with translate_errors(self.url):
            raw = self.store.run(self.ops.read_task(task_id))
        return TaskInfo.from_hash(task_id, raw) if raw else None

    def read_outcome(self, task_id: str) -> TaskInfo | None:
        """The fields a wait needs (state, outcome, value, error), in one HMGET; None when the
        hash has none of them (it does not exist)."""
        with translate_errors(self.url):
            raw = cast(
                list[bytes | None], self.redis.hmget(self.keys.task(task_id), OUTCOME_FIELDS)
            )
        fields = {name: value.decode("utf-8", "replace")
                  for name, value in zip(OUTCOME_FIELDS, raw, strict=True)
                  if value is not None}  # fmt: skip
        return TaskInfo(task_id, fields) if fields else None

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


_shared: dict[tuple[str, str, bool], Queue] = {}
_eager = {"always": False}


def set_always_eager(enabled: bool = True) -> None:
    """Run every ``TaskFunction.delay`` / ``.enqueue`` eagerly, in this process (for tests; as
    Celery's ``task_always_eager``). Queues made with ``Queue(...)`` are not affected."""
    _eager["always"] = enabled


def shared_queue(name: str | None = None, url: str | None = None) -> Queue:
    """One Queue per (name, url) for the process, used by ``TaskFunction.delay``."""
    key = (name or DEFAULT_QUEUE, resolve_url(url), _eager["always"])
    queue = _shared.get(key)
    if queue is None or queue._redis is None:
        queue = _shared[key] = Queue(key[0], key[1], is_async=not key[2])
    return queue
