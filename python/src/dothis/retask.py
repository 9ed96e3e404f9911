"""retask's simple API on the dothis protocol, for hand-written producers and consumers.

    from dothis.retask import Queue, Task

    queue = Queue("example")
    queue.connect()                                   # True, or False when Redis is unreachable
    job = queue.enqueue(Task({"user": "kushal"}))     # a task of function "retask"
    task = queue.wait()                               # a consumer blocks for the next task
    queue.send(task, "We received your information")  # the outcome a worker would write
    job.wait(5); job.result

A consumer claims with start.lua and answers with finish.lua, so the hash holds the same fields as
one a worker ran. While it holds tasks it keeps a worker key alive with a heartbeat thread, so the
reapers of real workers leave its tasks alone; if it dies they recover them.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

from dothis.engine.flow import Flow, drive_sync
from dothis.engine.lifecycle import Begun, Context, begin, conclude
from dothis.engine.tries import Raised, TryResult, run_call
from dothis.errors import ConnectionFailed, DothisError, TaskFailed, WaitTimeout
from dothis.producer.queue import Queue as DothisQueue
from dothis.producer.task import Task as Handle
from dothis.store import leases
from dothis.store.connection import SyncClient, connect, translate_errors
from dothis.store.execute import SyncStore
from dothis.wire.protocol import DEFAULT_HEARTBEAT_MS, DEFAULT_LEASE_MS
from dothis.wire.records import worker_record

FUNCTION = "retask"
BLOCK_SECONDS = 5.0


class Task:
    """The data of one task; ``id`` is set once it is enqueued or dequeued."""

    def __init__(self, data: Any, function: str = FUNCTION) -> None:
        self.data = data
        self.function = function
        self.id: str | None = None
        self._begun: Begun | None = None


class Job:
    """The producer's handle: ``result`` fills in once a consumer has sent it."""

    def __init__(self, queue: DothisQueue, task_id: str) -> None:
        self.id = task_id
        self._queue = queue

    @property
    def result(self) -> Any:
        info = self._queue.read_task(self.id)
        return None if info is None else info.value

    def wait(self, wait_time: float = 0) -> bool:
        """True once the task has finished (waits up to ``wait_time`` s; 0: forever)."""
        try:
            Handle(self._queue, self.id).wait(wait_time or None)
        except TaskFailed:
            return True
        except WaitTimeout:
            return False
        return True


class Queue:
    def __init__(self, name: str, config: dict[str, Any] | None = None) -> None:
        config = config or {}
        url = config.get("url")
        if url is None and config:
            password = config.get("password")
            auth = f":{password}@" if password else ""
            url = (f"redis://{auth}{config.get('host', '127.0.0.1')}:{config.get('port', 6379)}"
                   f"/{config.get('db', 0)}")  # fmt: skip
        self.name = name
        self._queue = DothisQueue(name, url)
        self.keys = self._queue.keys
        self.consumer = f"retask-{uuid.uuid4()}"
        self._context = Context.with_defaults(self._queue.ops, self.consumer, None)
        self._blocking: SyncStore | None = None
        self._heartbeat: threading.Thread | None = None
        self._stop = threading.Event()

    def connect(self) -> bool:
        """True when Redis answers, else False (retask's contract: no exception)."""
        try:
            self._queue.ping()
        except ConnectionFailed:
            return False
        return True

    @property
    def length(self) -> int:
        return len(self._queue)

    def enqueue(self, task: Task) -> Job:
        handle = self._queue.enqueue_call(task.function, {"data": task.data})
        task.id = handle.id
        return Job(self._queue, handle.id)

    def dequeue(self) -> Task | None:
        """The next task, or None when the queue is empty (does not block)."""
        while True:
            with translate_errors(self._queue.url):
                entry = self._queue.store.run(self._queue.ops.claim())
            if entry is None:
                return None
            task = self._start(entry)
            if task is not None:
                return task

    def wait(self, wait_time: float = 0) -> Task | None:
        """Block for the next task, up to ``wait_time`` s (0: forever); None when none came."""
        if self._blocking is None:
            self._blocking = SyncStore(connect(self._queue.url, blocking_seconds=BLOCK_SECONDS))
        left = wait_time or None
        while True:
            block = BLOCK_SECONDS if left is None else min(BLOCK_SECONDS, left)
            with translate_errors(self._queue.url):
                entry = self._blocking.run(self._queue.ops.claim_blocking(block))
            if entry is not None:
                task = self._start(entry)
                if task is not None:
                    return task
            elif left is not None:
                left -= block
                if left <= 0:
                    return None

    def send(self, task: Task, result: Any) -> bool:
        """Post the result of a dequeued task; False when the task was taken from this consumer
        (its lease had run out)."""
        return self._conclude(task, run_call(lambda: result, {}))

    def fail(self, task: Task, reason: str) -> bool:
        """Post a failure (error-code exception) for a dequeued task; it is tried again if it has
        attempts left, as a worker would."""
        return self._conclude(task, Raised(reason))

    def close(self) -> None:
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=5)
        leases.leave(self._queue.redis, self.keys.worker(self.consumer), self._listing())
        if self._blocking is not None:
            self._blocking.client.close()
        self._queue.close()

    # -- internals ------------------------------------------------------------------------

    def _drive(self, flow: Flow[Any]) -> Any:
        with translate_errors(self._queue.url):
            return drive_sync(flow, self._queue.store, _no_try)

    def _alive(self) -> None:
        """Register this consumer's worker key (every REQUIRED field) and keep it alive."""
        if self._heartbeat is not None:
            return
        client: SyncClient = self._queue.redis
        fields = worker_record(self.consumer, [self.name], [], 1, language="python-retask")
        leases.register(client, self.keys.worker(self.consumer), fields, DEFAULT_LEASE_MS,
                        self._listing())  # fmt: skip
        self._heartbeat = threading.Thread(target=self._beat, args=(client, fields), daemon=True)
        self._heartbeat.start()

    def _listing(self) -> leases.Listing:
        """This consumer's entry in the queue's registry of workers (SPEC.md 9.1)."""
        return leases.Listing(self.keys.workers, self.consumer)

    def _beat(self, client: SyncClient, fields: dict[str, str]) -> None:
        key = self.keys.worker(self.consumer)
        while not self._stop.wait(DEFAULT_HEARTBEAT_MS / 1000):
            try:
                if not leases.heartbeat(client, key, DEFAULT_LEASE_MS, self._listing()):
                    leases.register(client, key, fields, DEFAULT_LEASE_MS, self._listing())
            except Exception:  # Redis away: the next beat tries again
                continue

    def _start(self, entry: bytes) -> Task | None:
        self._alive()
        begun = self._drive(begin(entry, self._context))
        if not isinstance(begun, Begun):
            return None  # rejected, skipped, or ended without a try (bad input, cancel, ttl)
        task = Task(None, begun.invocation.name)
        task.id, task._begun = begun.claim.task_id, begun
        args = begun.invocation.args
        task.data = args.get("data", args)
        return task

    def _conclude(self, task: Task, result: TryResult) -> bool:
        if task._begun is None:
            raise DothisError("this task was not dequeued from a queue: dequeue() or wait() it")
        ctx = self._context
        recorded, fenced = ctx.processed, ctx.fenced
        self._drive(conclude(task._begun, result, ctx))
        task._begun = None
        return ctx.processed > recorded and ctx.fenced == fenced


def _no_try(_: Any) -> TryResult:
    raise DothisError("the retask consumer runs tasks itself")
