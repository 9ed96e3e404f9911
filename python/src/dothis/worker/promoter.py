"""Scheduled tasks (delays, retries) that are due move to pending (promote.lua, SPEC.md 5.11)."""

from __future__ import annotations

import asyncio

from dothis.store.execute import AsyncStore
from dothis.wire.clock import now_ms
from dothis.worker.lane import Lane

PROMOTE_BATCH = 100


class Promoter:
    name = "promoting scheduled tasks"

    def __init__(self, store: AsyncStore, lanes: list[Lane], schedule_ms: int) -> None:
        self.store = store
        self.lanes = lanes
        self.period = schedule_ms / 1000

    async def tick(self) -> None:
        for lane in self.lanes:
            while await self.promote_due(lane) == PROMOTE_BATCH:
                pass

    async def promote_due(self, lane: Lane) -> int:
        """Promote up to a batch of due entries; how many were due."""
        now = now_ms()
        due = await self.store.run(lane.ops.due_entries(now, PROMOTE_BATCH))
        await asyncio.gather(*(
            self.store.run(lane.ops.promote(entry, lane.keys.parse_entry(entry)[0], now))
            for entry in due))  # fmt: skip
        return len(due)
