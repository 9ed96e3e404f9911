"""Live counts for server-sent events: one shared poll per dashboard process.

The ``Hub`` runs one asyncio task that polls Redis every ``interval`` seconds and hands each new
snapshot to every subscriber. The task starts with the first subscriber and is cancelled when the
last one leaves: however many browsers watch, Redis is read once per interval, and not at all
while nobody watches.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

log = logging.getLogger("dothis.dashboard")

Snapshot = dict[str, Any]
KEEPALIVE_SECONDS = 15.0


class Hub:
    def __init__(self, poll: Callable[[], Awaitable[Snapshot]], interval: float = 1.0) -> None:
        self.poll = poll
        self.interval = interval
        self.subscribers: set[asyncio.Queue[Snapshot]] = set()
        self.task: asyncio.Task[None] | None = None
        self.polls = 0  # how many polls ran, for tests and /api/live
        self.last: Snapshot | None = None

    def subscribe(self) -> asyncio.Queue[Snapshot]:
        inbox: asyncio.Queue[Snapshot] = asyncio.Queue(maxsize=1)
        if self.last is not None:
            inbox.put_nowait(self.last)
        self.subscribers.add(inbox)
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._run())
        return inbox

    def unsubscribe(self, inbox: asyncio.Queue[Snapshot]) -> None:
        self.subscribers.discard(inbox)
        if not self.subscribers and self.task is not None:
            self.task.cancel()
            self.task = None
            self.last = None  # stale once nobody watches: the next subscriber waits for a poll

    async def _run(self) -> None:
        while True:
            try:
                snapshot = await self.poll()
            except Exception as error:  # Redis down: say so, and try again next interval
                log.warning("dashboard poll failed: %s", error)
                snapshot = {"error": str(error)}
            self.polls += 1
            if snapshot != self.last:
                self.last = snapshot
                for inbox in list(self.subscribers):
                    _replace(inbox, snapshot)
            await asyncio.sleep(self.interval)

    async def close(self) -> None:
        task, self.task = self.task, None
        self.subscribers.clear()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _replace(inbox: asyncio.Queue[Snapshot], snapshot: Snapshot) -> None:
    """Put the newest snapshot in, dropping one the subscriber has not read yet."""
    with contextlib.suppress(asyncio.QueueEmpty):
        inbox.get_nowait()
    inbox.put_nowait(snapshot)


async def stream(hub: Hub) -> AsyncIterator[str]:
    """The event stream of one subscriber: a ``counts`` event per new snapshot, a comment line
    every 15 s so that proxies keep the connection; unsubscribed however it ends."""
    inbox = hub.subscribe()
    try:
        yield "retry: 2000\n\n"
        while True:
            try:
                snapshot = await asyncio.wait_for(inbox.get(), KEEPALIVE_SECONDS)
            except TimeoutError:
                yield ": keepalive\n\n"
                continue
            yield f"event: counts\ndata: {json.dumps(snapshot, separators=(',', ':'))}\n\n"
    finally:
        hub.unsubscribe(inbox)
