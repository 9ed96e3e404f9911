"""One clock (SPEC.md 9.8): the worker measures its clock's offset to Redis ``TIME`` at start and
every minute, and every time it writes or compares is corrected by it."""

from __future__ import annotations

import logging

from dothis.store.clock import measure_async
from dothis.store.execute import AsyncStore
from dothis.wire.clock import offset_ms

log = logging.getLogger("dothis.worker")

WARN_MS = 1_000


class ClockCheck:
    name = "measuring the clock offset"
    period = 60.0

    def __init__(self, store: AsyncStore) -> None:
        self.store = store

    async def tick(self) -> None:
        before = offset_ms()
        offset = await measure_async(self.store)
        if abs(offset) > WARN_MS and abs(offset - before) > WARN_MS / 2:
            log.warning("this machine's clock is %.1f s %s Redis's; dothis corrects for it, but "
                        "check NTP on this machine", abs(offset) / 1000,
                        "behind" if offset > 0 else "ahead of")  # fmt: skip
