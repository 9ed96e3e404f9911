"""Eager mode (rq's is_async=False, Celery's task_always_eager): enqueue runs the task at once.

The task is written by enqueue.lua like any other, but its entry goes straight into the executing
list, claimed, so a live worker on the same queue never sees it; this process then runs the very
flow a worker runs (start.lua, the checks, the try, the decision, finish.lua, the follow-ups),
under a worker key of its own with every REQUIRED field. The hash and the results message are those
a worker would write. Differences, all meant for tests: retries run here, after the same backoff
(or ``Retry(delay=)``); ``delay`` and ``at`` are ignored (the task runs now); callbacks and the
tasks waiting for it run eagerly too.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import replace

from dothis.engine.flow import RunTry, drive_sync
from dothis.engine.lifecycle import Context, process
from dothis.engine.registry import Registry, default_registry
from dothis.engine.tries import TryResult, run_anywhere
from dothis.producer.options import TaskOptions
from dothis.store import leases
from dothis.store.execute import SyncStore
from dothis.store.ops import Ops
from dothis.wire.protocol import DEFAULT_HEARTBEAT_MS, DEFAULT_LEASE_MS
from dothis.wire.records import worker_record


class Eager:
    def __init__(self, store: SyncStore, ops: Ops, url: str, registry: Registry | None) -> None:
        self.store = store
        self.ops = ops
        self.url = url
        self.registry = registry if registry is not None else default_registry
        self.worker_id = f"eager-{uuid.uuid4()}"
        self.context = Context.with_defaults(ops, self.worker_id, self.registry, in_place=True)

    @staticmethod
    def options(options: TaskOptions) -> TaskOptions:
        """The options an eager task is written with: it runs now, whatever delay it asks for."""
        return replace(options, delay=None, at=None)

    def run(self, task_id: str) -> None:
        """Run the claimed entry ``task_id`` and every follow-up task it queues, in order."""
        todo = [task_id]
        with self._lease():
            while todo:
                entry = todo.pop(0)
                todo += drive_sync(process(entry.encode(), self.context), self.store, self._try)

    @staticmethod
    def _try(request: RunTry) -> TryResult:
        invocation = request.invocation
        return run_anywhere(invocation.function, invocation.args, invocation.is_async,
                            invocation.task, invocation.middleware)  # fmt: skip

    def _lease(self) -> _Lease:
        return _Lease(self)


class _Lease:
    """This process's worker key while an eager task runs, renewed by a heartbeat thread, deleted
    after: a reaper never recovers a task an eager run owns."""

    def __init__(self, eager: Eager) -> None:
        self.eager = eager
        self.key = eager.ops.keys.worker(eager.worker_id)
        self.listing = leases.Listing(eager.ops.keys.workers, eager.worker_id)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True, name="dothis-eager-lease")

    def __enter__(self) -> None:
        fields = worker_record(self.eager.worker_id, [self.eager.ops.keys.queue],
                               self.eager.registry.names(), 1, language="python")  # fmt: skip
        leases.register(self.eager.store.client, self.key, fields, DEFAULT_LEASE_MS,
                        self.listing)  # fmt: skip
        self.thread.start()

    def _beat(self) -> None:
        client = self.eager.store.client
        while not self.stop.wait(DEFAULT_HEARTBEAT_MS / 1000):
            try:
                leases.heartbeat(client, self.key, DEFAULT_LEASE_MS, self.listing)
            except Exception:  # the task's own call will report a lost Redis
                continue

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        leases.leave(self.eager.store.client, self.key, self.listing)
