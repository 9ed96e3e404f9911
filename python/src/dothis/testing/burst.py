"""Run what a queue holds now, in this process, with the worker's own engine: a burst.

``run_queued`` claims each pending entry (``ops.claim``, LMOVE pending -> executing) and runs it
through ``lifecycle.process`` driven by ``drive_sync``: start.lua, the checks, the try, the
decision, finish.lua or retry.lua, and the follow-ups (callbacks, released dependents), which go
to pending as a worker's do and run in the same burst. Between rounds it promotes scheduled tasks
that are due (promote.lua), fires the registry's schedules of this queue (the worker's own
Scheduler) and runs follow-ups left over (cancel of a task with a callback); it stops when nothing
is pending. A retry, or a task delayed into the future, stays scheduled: move ``Clock`` forward and
run again.

The burst holds a worker key of its own while it runs (eager mode's), so a real worker's reaper
never takes its tasks. A plain function runs in the calling thread (mocks and patches apply); an
``async def`` one on an event loop of its own. Timeouts are not enforced, as in eager mode.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from dothis.engine.events import Kind, TaskEvent
from dothis.engine.flow import RunTry, drive_sync
from dothis.engine.followups import drain_followups
from dothis.engine.lifecycle import process
from dothis.engine.registry import Registry, default_registry
from dothis.engine.tries import TryResult, run_anywhere
from dothis.producer.eager import Eager
from dothis.producer.queue import Queue
from dothis.store.connection import connect_async, translate_errors
from dothis.store.execute import AsyncStore
from dothis.wire.clock import now_ms
from dothis.wire.protocol import Field, Outcome, State
from dothis.wire.records import TaskInfo
from dothis.worker.lane import Lane
from dothis.worker.scheduler import Scheduler

T = TypeVar("T")

LIMIT = 1000
PROMOTE_BATCH = 100


@dataclass(frozen=True)
class Ran:
    """One entry a burst handled, as its hash reads afterwards.

    ``outcome`` is the protocol's (successful, failed, cancelled, expired), None while another try
    is scheduled (``state`` is then ``scheduled``) or when the entry was rejected (no hash);
    ``value`` is what the function returned; ``exception`` the traceback of a failed try.
    """

    id: str
    function: str | None
    outcome: str | None
    value: Any = None
    error_code: str | None = None
    error_reason: str | None = None
    exception: str | None = field(default=None, repr=False)
    state: str | None = None
    info: TaskInfo | None = field(default=None, repr=False, compare=False)

    @property
    def succeeded(self) -> bool:
        return self.outcome == Outcome.SUCCESSFUL

    @property
    def retried(self) -> bool:
        """The try failed and another one is scheduled."""
        return self.outcome is None and self.state == State.SCHEDULED

    def __str__(self) -> str:
        ended = self.outcome or ("retry scheduled" if self.retried else self.state or "rejected")
        error = f" ({self.error_code}: {self.error_reason})" if self.error_code else ""
        return f"{self.function or '?'} {self.id}: {ended}{error}"

    @classmethod
    def read(cls, task_id: str, info: TaskInfo | None, event: TaskEvent | None) -> Ran:
        if info is None:  # a rejected entry, or a hash already gone
            code = event.code if event is not None else None
            reason = event.reason if event is not None else "its hash is gone"
            return cls(task_id, None, None, error_code=code, error_reason=reason)
        return cls(task_id, info.function, info.outcome, info.value,
                   info.get(Field.ERROR_CODE) or (event.code if event else None),
                   info.get(Field.ERROR_REASON) or (event.reason if event else None),
                   info.get(Field.ERROR_EXCEPTION) or (event.traceback if event else None),
                   info.state, info)  # fmt: skip


def run_queued(
    queue: Queue,
    registry: Registry | None = None,
    *,
    schedules: bool = True,
    check: bool = False,
    limit: int = LIMIT,
) -> list[Ran]:
    """Run everything ``queue`` holds now, and what those tasks queue, until nothing is pending;
    what ran, in order.

    ``registry``: the functions (default: the default registry of ``@task``). ``schedules``: fire
    the registry's periodic and cron schedules of this queue as a worker would (the first burst
    arms a new schedule; it fires at its next occurrence: ``Clock.advance``). ``check``: raise
    AssertionError, with the tracebacks, if a task ended without success. ``limit``: at most this
    many entries (a task that queues itself again forever fails the test instead of hanging it).
    """
    table = registry if registry is not None else default_registry
    ran = _Burst(queue, table, fire=schedules).run(limit)
    if check:
        failed = [one for one in ran if not one.succeeded and not one.retried]
        if failed:
            details = "\n".join(f"  {one}\n{_indent(one.exception)}" for one in failed)
            raise AssertionError(f"{len(failed)} of {len(ran)} task(s) did not succeed:\n"
                                 f"{details}")  # fmt: skip
    return ran


class Runner:
    """``run_queued`` bound to one queue and, optionally, one registry (the ``dothis_worker``
    fixture): ``runner.run()`` after each step of a test."""

    def __init__(self, queue: Queue, registry: Registry | None = None) -> None:
        self.queue = queue
        self.registry = registry

    def run(
        self,
        registry: Registry | None = None,
        *,
        schedules: bool = True,
        check: bool = False,
        limit: int = LIMIT,
    ) -> list[Ran]:
        """``run_queued(self.queue, registry or self.registry, ...)``."""
        table = registry if registry is not None else self.registry
        return run_queued(self.queue, table, schedules=schedules, check=check, limit=limit)


class _Burst:
    def __init__(self, queue: Queue, registry: Registry, fire: bool = True) -> None:
        self.queue = queue
        self.eager = Eager(queue.store, queue.ops, queue.url, registry)
        self.events: list[TaskEvent] = []
        # Eager mode's consumer, but as a worker: retries are scheduled, follow-ups go to pending.
        self.context = replace(self.eager.context, in_place=False, observe=self.events.append)
        self.schedules = [s for s in registry.schedules if s.queue == queue.name] if fire else []

    def run(self, limit: int) -> list[Ran]:
        store, ops = self.queue.store, self.queue.ops
        ran: list[Ran] = []
        with translate_errors(self.queue.url), self.eager._lease():
            while True:
                self._between_rounds()
                before = len(ran)
                while True:
                    if len(ran) >= limit and len(self.queue):
                        raise AssertionError(f"run_queued ran {limit} entries of {self.queue} "
                                             "and more are queued: does a task queue itself "
                                             "again? (pass a higher limit= if not)")  # fmt: skip
                    entry = store.run(ops.claim())
                    if entry is None:
                        break
                    ran.append(self._one(entry))
                if len(ran) == before:
                    return ran

    def _one(self, entry: bytes) -> Ran:
        seen = len(self.events)
        drive_sync(process(entry, self.context), self.queue.store, self._try)
        task_id, _ = self.queue.keys.parse_entry(entry)
        mine = [event for event in self.events[seen:] if event.kind is not Kind.STARTED]
        info = self.queue.read_task(task_id) if task_id is not None else None
        return Ran.read(task_id or entry.decode("utf-8", "replace"), info,
                        mine[-1] if mine else None)  # fmt: skip

    @staticmethod
    def _try(request: RunTry) -> TryResult:
        invocation = request.invocation

        def run() -> TryResult:
            return run_anywhere(invocation.function, invocation.args, invocation.is_async)

        return _aside(run) if invocation.is_async and _loop_running() else run()

    def _between_rounds(self) -> None:
        """What a worker's background does: promote what is due, fire schedules, and run the
        follow-ups an ended task left in ``<queue>:releasing``."""
        store, ops, keys = self.queue.store, self.queue.ops, self.queue.keys
        now = now_ms()
        while True:
            due = store.run(ops.due_entries(now, PROMOTE_BATCH))
            for entry in due:
                store.run(ops.promote(entry, keys.parse_entry(entry)[0], now))
            if len(due) < PROMOTE_BATCH:
                break
        if self.schedules:
            _aside(lambda: asyncio.run(self._fire()))
        drive_sync(drain_followups(ops, self.context.failure_ttl), store, self._try)

    async def _fire(self) -> None:
        """The worker's own Scheduler, one tick, on an event loop of its own."""
        store = AsyncStore(connect_async(self.queue.url))
        try:
            lane = Lane(self.queue.keys, self.queue.ops, self.context)
            await Scheduler(store, [lane], self.schedules).tick()
        finally:
            await store.client.aclose()


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _aside(call: Callable[[], T]) -> T:
    """Run ``call`` in a thread of its own and wait: it may start an event loop even when the
    caller runs in one (an async test)."""
    with ThreadPoolExecutor(1, thread_name_prefix="dothis-testing") as pool:
        return pool.submit(call).result()


def _indent(text: str | None) -> str:
    return "".join(f"      {line}\n" for line in (text or "").strip().splitlines())
