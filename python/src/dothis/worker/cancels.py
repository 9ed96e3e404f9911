"""Running tasks whose hash got ``cancel-requested`` (cancel.lua, or by hand) are stopped."""

from __future__ import annotations

import asyncio
import logging

from dothis.store.execute import AsyncStore
from dothis.worker.tries import Tries

log = logging.getLogger("dothis.worker")


class CancelWatcher:
    name = "checking cancels"

    def __init__(self, store: AsyncStore, tries: Tries, cancel_check_ms: int) -> None:
        self.store = store
        self.tries = tries
        self.period = cancel_check_ms / 1000

    async def tick(self) -> None:
        waiting = dict(self.tries.cancels)
        if not waiting:
            return
        flags = await asyncio.gather(
            *(self.store.run(ops.cancel_requested(task_id)) for ops, task_id in waiting),
            return_exceptions=True,
        )
        for ((_, task_id), event), requested in zip(waiting.items(), flags, strict=True):
            if requested is True:
                log.info("task %s: cancel requested; stopping it", task_id)
                event.set()
