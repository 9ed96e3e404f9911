"""Script calls made while a pipeline is in flight are sent together in the next one.

Under load the worker's start, finish and retry calls for many tasks share one round trip each;
with a single task in flight nothing waits (a call is sent at once when no pipeline is out).
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.exceptions import NoScriptError


class Batcher:
    def __init__(self, client: Any, limit: int = 500) -> None:
        self.client = client
        self.limit = limit
        self._queued: list[tuple[Any, list[Any], list[Any], asyncio.Future[Any]]] = []
        self._flushing = False

    async def call(self, script: Any, keys: list[Any], args: list[Any]) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queued.append((script, keys, args, future))
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        try:
            while self._queued:
                batch, self._queued = self._queued[: self.limit], self._queued[self.limit :]
                pipe = self.client.pipeline(transaction=False)
                for script, keys, args, _ in batch:
                    # EVALSHA itself: a pipeline of Script objects first asks SCRIPT EXISTS, one
                    # more round trip per batch. NOSCRIPT replies are handled below.
                    pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
                try:
                    replies = await pipe.execute(raise_on_error=False)
                except Exception as error:  # the connection failed: every caller hears of it
                    for *_, future in batch:
                        if not future.done():
                            future.set_exception(error)
                    continue
                for (script, keys, args, future), reply in zip(batch, replies, strict=True):
                    if future.done():
                        continue
                    outcome = reply
                    if isinstance(reply, NoScriptError):  # Redis lost its scripts: load, redo
                        try:
                            outcome = await script(keys=keys, args=args)
                        except Exception as error:
                            outcome = error
                    if isinstance(outcome, Exception):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
        finally:
            self._flushing = False
