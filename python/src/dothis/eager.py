"""Eager mode (rq's is_async=False, Celery's task_always_eager): enqueue runs the task at once.

The task goes through enqueue.lua like any other (same checks, same fields), is then taken out of
pending and run in this process, and its outcome is written by finish.lua: the hash and the
results message are those a worker would write. Its callbacks and the tasks waiting for it run
eagerly too. Retries happen at once, without backoff. Meant for tests.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import TYPE_CHECKING, Any, cast

from dothis.connection import translate_errors
from dothis.execution import Call, Failure, failure_fields, prepare, success_fields, unserializable
from dothis.followups import callback_call, callback_id
from dothis.pool import Reply, run_call
from dothis.protocol import ErrorCode, Field, State, now_iso, now_ms
from dothis.registry import Registry, default_registry

if TYPE_CHECKING:
    from dothis.producer import Queue
    from dothis.task import Task

WORKER = "eager"


def _call(call: Call) -> Reply:
    if not inspect.iscoroutinefunction(call.function):
        return run_call(call.function, call.args)

    async def run() -> Any:
        return await call.function(**call.args)

    return run_call(lambda: asyncio.run(run()), {})


class Eager:
    def __init__(self, queue: Queue, registry: Registry | None) -> None:
        self.queue = queue
        self.registry = registry if registry is not None else default_registry

    def run(self, keys: list[str], argv: list[str]) -> Task:
        from dothis.task import Task

        queue = self.queue
        with translate_errors(queue.url):
            created = queue._scripts.enqueue(keys=keys, args=argv, client=queue.redis)
        task = queue._created(created, argv[0], self._options(argv))
        self._run(task.id)
        return Task(queue, task.id)

    @staticmethod
    def _options(argv: list[str]) -> Any:
        from dothis.options import TaskOptions

        parents = int(argv[3])
        return TaskOptions(depends_on=argv[4 : 4 + parents] or None)

    def _run(self, task_id: str) -> None:
        """Take a pending or scheduled task out of its list, run it, write its outcome."""
        keys, client = self.queue.keys, self.queue.redis
        key = keys.task(task_id)
        if client.hget(key, Field.STATE) not in (State.PENDING.encode(), State.SCHEDULED.encode()):
            return  # waiting for parents: it runs when they have
        pipe = client.pipeline(transaction=True)
        pipe.lrem(keys.pending, 1, task_id)
        pipe.zrem(keys.scheduled, task_id)
        pipe.lpush(keys.executing, task_id)
        pipe.hset(key, mapping={Field.STATE: State.EXECUTING, Field.EXECUTING_CREATED: now_iso(),
                                Field.WORKER: WORKER, Field.CLAIMS: "1"})  # fmt: skip
        pipe.hgetall(key)
        fields = cast(dict[bytes, bytes], pipe.execute()[-1])
        failed, outcome = self._outcome(fields)
        keep_field = Field.FAILURE_TTL if failed else Field.RESULT_TTL
        keep = int(fields.get(keep_field.encode(), b"0") or 0)
        written = self.queue._scripts.finish(
            keys=[key, keys.executing, keys.failed, keys.succeeded, keys.dependents(task_id),
                  keys.releasing],
            args=[task_id, WORKER, "1", keys.results, key, task_id, now_ms(),
                  "failed" if failed else "succeeded", max(keep, 0), 0, *outcome],
            client=client,
        )  # fmt: skip
        if written == 2:
            self._followups(task_id)

    def _outcome(self, fields: dict[bytes, bytes]) -> tuple[bool, list[str]]:
        prepared = prepare(fields, self.registry)
        if isinstance(prepared, Failure):
            return True, failure_fields(prepared)
        for _ in range(prepared.attempts - prepared.retries):
            reply = _call(prepared)
            if reply.kind == "ok":
                return False, success_fields(reply.value)
            if reply.kind == "unserializable":
                return True, failure_fields(unserializable(reply.detail, reply.value))
        return True, failure_fields(Failure(ErrorCode.EXCEPTION, reply.value, reply.detail))

    def _followups(self, task_id: str) -> None:
        """The callback and the waiting tasks of a task that just ended, run eagerly."""
        keys, client, scripts = self.queue.keys, self.queue.redis, self.queue._scripts
        info = self.queue.read_task(task_id)
        if info is None:
            return
        call = callback_call(task_id, info.fields)
        if call is not None:
            child = callback_id(task_id)
            if not client.exists(keys.task(child)):
                self.queue.enqueue_call(call[0], call[1], task_id=child)
        dependents = keys.dependents(task_id)
        for raw in cast(list[bytes], client.smembers(dependents)):
            child = raw.decode()
            released = scripts.release(
                keys=[keys.task(child), keys.pending, dependents, keys.failed,
                      keys.dependents(child), keys.releasing],
                args=[child, task_id, info.outcome, now_iso(), now_ms(), keys.results,
                      keys.task(child), 0],
                client=client,
            )  # fmt: skip
            if released == 1:
                self._run(child)
            elif released == 3:
                self._followups(child)
        client.srem(keys.releasing, task_id)
