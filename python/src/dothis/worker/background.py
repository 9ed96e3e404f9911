"""The worker's background concerns, each a small unit with a period and a ``tick``; ``Background``
runs them, each on its own jittered timer, and stops them."""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Protocol

from redis.exceptions import ResponseError

from dothis.store.connection import REDIS_ERRORS
from dothis.store.faults import report

log = logging.getLogger("dothis.worker")

STOP_SECONDS = 5


class Concern(Protocol):
    name: str

    @property
    def period(self) -> float: ...

    async def tick(self) -> None: ...


class Background:
    def __init__(self, concerns: list[Concern]) -> None:
        self.concerns = concerns
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._every(concern), name=f"dothis-{concern.name}")
                       for concern in self.concerns]  # fmt: skip

    async def stop(self) -> None:
        for job in self._tasks:
            job.cancel()
        if not self._tasks:
            return
        _, stuck = await asyncio.wait(self._tasks, timeout=STOP_SECONDS)
        if stuck:
            log.warning("%d background loop(s) did not stop within %d s", len(stuck), STOP_SECONDS)

    @staticmethod
    async def _every(concern: Concern) -> None:
        """Run ``concern.tick`` forever, a jittered period apart; a failure is logged, not fatal."""
        current = asyncio.current_task()
        while True:
            await asyncio.sleep(concern.period * random.uniform(0.8, 1.2))
            try:
                await concern.tick()
            except REDIS_ERRORS as error:
                log.debug("%s failed (%s); retrying", concern.name, error)
            except ResponseError as error:  # a Redis fault (READONLY, OOM...): one line, no trace
                report(log, error, "%s failed", concern.name)
            except Exception:
                log.exception("%s failed", concern.name)
            # A cancel that arrived during the tick may surface as a connection error from the
            # client library; the loop must still end.
            if current is not None and current.cancelling():
                raise asyncio.CancelledError
