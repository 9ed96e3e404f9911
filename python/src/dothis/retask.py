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
from typing import Any, cast

import redis

from dothis import codec
from dothis.connection import connect, translate_errors
from dothis.errors import ConnectionFailed, DothisError
from dothis.execution import Failure, failure_fields, success_fields
from dothis.producer import Queue as DothisQueue
from dothis.protocol import DEFAULT_LEASE_MS, ErrorCode, Field, RejectCode, now_iso, now_ms
from dothis.reaper import rejection

FUNCTION = "retask"


class Task:
    """The data of one task; ``id`` is set once it is enqueued or dequeued."""

    def __init__(self, data: Any, function: str = FUNCTION) -> None:
        self.data = data
        self.function = function
        self.id: str | None = None
        self._entry = b""
        self._claims = 0


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
        from dothis.errors import TaskFailed, WaitTimeout
        from dothis.task import Task as Handle

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
        self._blocking: redis.Redis | None = None
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
                entry = self._queue.redis.lmove(self.keys.pending, self.keys.executing,
                                                "RIGHT", "LEFT")  # fmt: skip
            if entry is None:
                return None
            task = self._start(cast(bytes, entry))
            if task is not None:
                return task

    def wait(self, wait_time: float = 0) -> Task | None:
        """Block for the next task, up to ``wait_time`` s (0: forever); None when none came."""
        if self._blocking is None:
            self._blocking = connect(self._queue.url, blocking_seconds=5)
        deadline = wait_time or None
        while True:
            block = 5.0 if deadline is None else min(5.0, deadline)
            with translate_errors(self._queue.url):
                entry = self._blocking.blmove(self.keys.pending, self.keys.executing,
                                              cast(int, block), "RIGHT", "LEFT")  # fmt: skip
            if entry is not None:
                task = self._start(cast(bytes, entry))
                if task is not None:
                    return task
            elif deadline is not None:
                deadline -= block
                if deadline <= 0:
                    return None

    def send(self, task: Task, result: Any) -> bool:
        """Post the result of a dequeued task; False when the task was taken from this consumer
        (its lease had run out)."""
        try:
            encoded = codec.encode(result)
        except (TypeError, ValueError) as error:
            failure = Failure(ErrorCode.UNSERIALIZABLE_RESULT, str(error))
            return self._finish(task, failure_fields(failure), False)
        return self._finish(task, success_fields(encoded), True)

    def fail(self, task: Task, reason: str) -> bool:
        """Post a failure (error-code exception) for a dequeued task."""
        return self._finish(task, failure_fields(Failure(ErrorCode.EXCEPTION, reason)), False)

    def close(self) -> None:
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=5)
        self._queue.redis.delete(self.keys.worker(self.consumer))
        if self._blocking is not None:
            self._blocking.close()
        self._queue.close()

    # -- internals ------------------------------------------------------------------------

    def _alive(self) -> None:
        key = self.keys.worker(self.consumer)
        self._queue.redis.hset(key, mapping={"id": self.consumer, "language": "python-retask",
                                             "heartbeat": now_iso()})  # fmt: skip
        self._queue.redis.pexpire(key, DEFAULT_LEASE_MS)
        if self._heartbeat is None:
            self._heartbeat = threading.Thread(target=self._beat, daemon=True)
            self._heartbeat.start()

    def _beat(self) -> None:
        while not self._stop.wait(DEFAULT_LEASE_MS / 3000):
            try:
                self._alive()
            except (redis.RedisError, OSError):
                continue

    def _start(self, entry: bytes) -> Task | None:
        queue = self._queue
        task_id, problem = self.keys.parse_entry(entry)
        if task_id is None:
            self._reject(entry, RejectCode.INVALID_ID, problem)
            return None
        self._alive()
        reply = queue._scripts.start(
            keys=[self.keys.task(task_id), self.keys.executing],
            args=[entry, self.consumer, now_iso(), 8 * 1024 * 1024, 256], client=queue.redis,
        )  # fmt: skip
        status = reply[0].decode()
        if status == "missing":
            self._reject(entry, RejectCode.MISSING_HASH, "no hash")
            return None
        if status == "wrong-type":
            self._reject(entry, RejectCode.WRONG_TYPE, "not a hash")
            return None
        if status in ("lost", "duplicate"):
            return None
        task = Task(None)
        task.id, task._entry, task._claims = task_id, entry, int(reply[1])
        if status != "ok":
            code = ErrorCode.TOO_LARGE if status == "too-large" else ErrorCode.INVALID_STATE
            self._finish(task, failure_fields(Failure(code, reply[2].decode("utf-8", "replace"))),
                         False)  # fmt: skip
            return None
        fields = {k.decode(): v for k, v in zip(reply[2][::2], reply[2][1::2], strict=True)}
        try:
            args = codec.decode(fields.get(Field.ARGS, b"{}").decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as error:
            self.fail(task, f"args is not valid JSON: {error}")
            return None
        task.function = fields.get(Field.FUNCTION, b"").decode("utf-8", "replace")
        task.data = args.get("data", args) if isinstance(args, dict) else args
        return task

    def _reject(self, entry: bytes, code: RejectCode, reason: str) -> None:
        self._queue._scripts.reject(
            keys=[self.keys.executing, self.keys.rejected],
            args=[entry, rejection(entry, code, reason, self.consumer), 10_000],
            client=self._queue.redis,
        )

    def _finish(self, task: Task, fields: list[str], succeeded: bool) -> bool:
        if task.id is None:
            raise DothisError("this task was not dequeued from a queue")
        keys, key = self.keys, self.keys.task(task.id)
        written = self._queue._scripts.finish(
            keys=[key, keys.executing, keys.failed, keys.succeeded, keys.dependents(task.id),
                  keys.releasing],
            args=[task._entry, self.consumer, task._claims, keys.results, key, task.id, now_ms(),
                  "succeeded" if succeeded else "failed", 0, 0, *fields],
            client=self._queue.redis,
        )  # fmt: skip
        return bool(written in (1, 2))
