"""Requests made while a pipeline is in flight are sent together in the next one.

Under load the worker's start, finish and retry calls for many tasks share one round trip each;
with a single request in flight nothing waits (it is sent at once when no pipeline is out).
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis as AsyncClient
from redis.exceptions import NoScriptError

Queued = tuple[Any, tuple[Any, ...], asyncio.Future[Any]]


class Batcher:
    """Sends raw commands (EVALSHA included) in pipelines; ``scripts`` reloads on NOSCRIPT."""

    def __init__(self, client: AsyncClient, scripts: dict[str, Any], limit: int = 500) -> None:
        self.client = client
        self.scripts = scripts
        self.limit = limit
        self._queued: list[Queued] = []
        self._flushing = False
        self._flusher: asyncio.Task[None] | None = None

    async def send(self, script: str | None, command: tuple[Any, ...]) -> Any:
        """``command`` as sent; ``script`` names the script of an EVALSHA, else None."""
        return await self.submit(script, command)

    def submit(self, script: str | None, command: tuple[Any, ...]) -> asyncio.Future[Any]:
        """Queue ``command`` now (it goes in the next pipeline); the future of its reply."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queued.append((script, command, future))
        if not self._flushing:
            self._flushing = True
            self._flusher = loop.create_task(self._flush())  # referenced while it runs
        return future

    async def _flush(self) -> None:
        try:
            while self._queued:
                batch, self._queued = self._queued[: self.limit], self._queued[self.limit :]
                await self._send(batch)
        finally:
            self._flushing = False

    async def _send(self, batch: list[Queued]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for _, command, _ in batch:
            # EVALSHA itself: a pipeline of Script objects first asks SCRIPT EXISTS, one more
            # round trip per batch. NOSCRIPT replies are handled below.
            pipe.execute_command(*command)
        try:
            replies = await pipe.execute(raise_on_error=False)
        except Exception as error:  # the connection failed: every caller hears of it
            for *_, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for (script, command, future), reply in zip(batch, replies, strict=True):
            if future.done():
                continue
            outcome = reply
            if isinstance(reply, NoScriptError) and script is not None:  # load, then redo
                numkeys = int(command[2])
                keys, args = command[3 : 3 + numkeys], command[3 + numkeys :]
                try:
                    outcome = await self.scripts[script](keys=list(keys), args=list(args))
                except Exception as error:
                    outcome = error
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
