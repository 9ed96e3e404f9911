"""Recovery of tasks whose worker is gone (recover.lua), run by every worker on a timer.

An executing entry whose hash names an owner whose worker key has expired is recovered at once.
An entry with no recorded owner (its claimer died between the claim and start.lua) is recovered
only after this reaper has seen it ownerless for a whole lease, so a live claimer is never raced.
Each sweep also runs follow-ups left in ``<queue>:releasing`` by a worker that died, and checks
the parents of waiting tasks (a parent whose hash vanished fails its children).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import ResponseError

from dothis.engine.events import Kind, TaskEvent
from dothis.engine.flow import Flow
from dothis.engine.followups import check_waiting, drain_followups, run_followups
from dothis.store.execute import AsyncStore
from dothis.store.replies import Recovered
from dothis.wire.clock import now_ms
from dothis.wire.protocol import ID_MAX_BYTES, RejectCode, State, name_problem
from dothis.wire.records import rejection_record
from dothis.worker.lane import Lane

log = logging.getLogger("dothis.reaper")

PAGE = 1000
MAX_PAGES = 100

Drive = Callable[[Flow[Any]], Awaitable[Any]]


class Reaper:
    name = "recovery sweep"

    def __init__(self, store: AsyncStore, lanes: list[Lane], drive: Drive, worker_id: str,
                 lease_ms: int, reap_ms: int, max_claims: int) -> None:  # fmt: skip
        self.store = store
        self.lanes = lanes
        self.drive = drive
        self.worker_id = worker_id
        self.lease = lease_ms / 1000
        self.period = reap_ms / 1000
        self.max_claims = max_claims
        self._ownerless: dict[tuple[str, bytes], float] = {}

    async def tick(self) -> None:
        for lane in self.lanes:
            await self.sweep(lane)

    async def sweep(self, lane: Lane) -> None:
        failure_ttl = lane.context.failure_ttl
        await self.drive(drain_followups(lane.ops, failure_ttl))
        await self.drive(check_waiting(lane.ops, failure_ttl))
        entries = await self._executing(lane)
        valid: list[tuple[bytes, str]] = []
        for entry in entries:
            task_id, problem = lane.keys.parse_entry(entry)
            if task_id is None:
                record = rejection_record(entry, RejectCode.INVALID_ID, problem, self.worker_id)
                await self.store.run(lane.ops.reject(entry, record))
            else:
                valid.append((entry, task_id))
        owners = await asyncio.gather(
            *(self.store.run(lane.ops.ownership(task_id)) for _, task_id in valid),
            return_exceptions=True,
        )
        now, seen = time.monotonic(), set()
        for (entry, task_id), fields in zip(valid, owners, strict=True):
            seen.add((lane.keys.queue, entry))
            state, owner, _, lease = (None,) * 4 if isinstance(fields, BaseException) else fields
            owner_id = owner.decode("utf-8", "replace") if owner else ""
            if state == State.EXECUTING.value.encode() and owner_id:
                if not name_problem(owner_id, "worker id", ID_MAX_BYTES):
                    await self._recover_owned(lane, entry, task_id, owner_id, lease)
                continue
            first = self._ownerless.setdefault((lane.keys.queue, entry), now)
            if now - first >= self.lease:
                await self._recover(lane, entry, task_id, "")
        for key in [key for key in self._ownerless if key[0] == lane.keys.queue]:
            if key not in seen:
                del self._ownerless[key]

    async def _executing(self, lane: Lane) -> list[bytes]:
        """The executing list, read in pages (a page shorter than PAGE is the last)."""
        entries: list[bytes] = []
        for page in range(MAX_PAGES):
            chunk = await self.store.run(lane.ops.executing_page(page * PAGE, PAGE))
            entries.extend(chunk)
            if len(chunk) < PAGE:
                break
        return entries

    async def _recover_owned(
        self, lane: Lane, entry: bytes, task_id: str, owner: str, lease: bytes | None
    ) -> None:
        """An owned task goes back when its owner's key is gone, or (for an owner that keeps task
        leases, SPEC.md 9.2) when its lease ran out although the owner lives."""
        try:
            alive, task_leases = await self.store.run(lane.ops.owner(owner))
        except ResponseError:  # a worker key that is not a hash: it exists, so it is a lease
            alive, task_leases = True, False
        expired = task_leases and lease is not None and lease.isdigit() and int(lease) < now_ms()
        if alive and not expired:
            return
        await self._recover(lane, entry, task_id, owner, lease_rule=task_leases)

    async def _recover(
        self, lane: Lane, entry: bytes, task_id: str, owner: str, *, lease_rule: bool = False
    ) -> None:
        outcome = await self.store.run(lane.ops.recover(
            entry, task_id, owner, self.max_claims, lane.context.failure_ttl,
            lease_rule=lease_rule))  # fmt: skip
        if outcome in (Recovered.REQUEUED, Recovered.FAILED):
            self._ownerless.pop((lane.keys.queue, entry), None)
        if outcome is Recovered.REQUEUED:
            source = (f"worker {owner}, whose lease on it ran out" if lease_rule
                      else f"dead worker {owner}" if owner else "an unfinished claim")  # fmt: skip
            log.warning("recovered task %s from %s: back in %s", task_id, source,
                        lane.keys.pending)  # fmt: skip
            lane.context.observe(TaskEvent(Kind.RECOVERED, lane.keys.queue, task_id, self.worker_id,
                                           reason=source))  # fmt: skip
        elif outcome is Recovered.FAILED:
            await self.drive(run_followups(task_id, lane.ops, lane.context.failure_ttl))
            lane.context.observe(TaskEvent(Kind.FAILED, lane.keys.queue, task_id, self.worker_id,
                                           code="worker-lost", reason=f"claimed {self.max_claims} "
                                           "times, its worker lost each time"))  # fmt: skip
