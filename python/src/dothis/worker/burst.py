"""Burst mode (``dothis worker --burst``, rq's name): drain what is queued now, then exit.

The worker stops once it runs nothing and every queue it serves has nothing pending and nothing
scheduled that is already due; tasks scheduled for later, and retries not yet due, stay queued
for the next worker. For CI jobs and cron.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from dothis.store.execute import AsyncStore
from dothis.wire.clock import now_ms
from dothis.worker.lane import Lane

log = logging.getLogger("dothis.worker")

CHECK_SECONDS = 0.1


class Burst:
    name = "burst check"
    period = CHECK_SECONDS

    def __init__(self, store: AsyncStore, lanes: list[Lane], busy: Callable[[], bool],
                 stop: Callable[[], None]) -> None:  # fmt: skip
        self.store = store
        self.lanes = lanes
        self.busy = busy
        self.stop = stop
        self._quiet = 0

    async def tick(self) -> None:
        if self.busy() or not await self._empty():
            self._quiet = 0
            return
        # Twice in a row: a task that just ended may be queueing its follow-ups.
        self._quiet += 1
        if self._quiet >= 2:
            log.info("burst: nothing left to run; stopping")
            self.stop()

    async def _empty(self) -> bool:
        now = now_ms()
        for lane in self.lanes:
            if await self.store.run(lane.ops.pending_length()):
                return False
            if await self.store.run(lane.ops.due_entries(now, 1)):
                return False
        return True
