"""Executors: run the requests of ``ops`` on a client and return their typed replies.

``SyncStore`` serves producers, eager mode and the retask consumer; ``AsyncStore`` serves the
worker and batches concurrent requests into pipelines.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar, cast

from dothis.store.batching import Batcher
from dothis.store.connection import AsyncClient, SyncClient
from dothis.store.ops import Command, ScriptCall
from dothis.store.scripts import register

T = TypeVar("T")


class SyncStore:
    def __init__(self, client: SyncClient) -> None:
        self.client = client
        self.scripts = register(client)

    def run(self, request: ScriptCall[T] | Command[T]) -> T:
        if isinstance(request, ScriptCall):
            raw = self.scripts[request.script](keys=request.keys, args=request.args,
                                               client=self.client)  # fmt: skip
        else:
            raw = cast(Any, self.client).execute_command(*request.args)
        return request.parse(raw)

    def run_many(self, requests: Sequence[ScriptCall[Any]]) -> list[Any]:
        """Script calls in one pipeline; each reply parsed, or the exception it raised."""
        pipe = self.client.pipeline(transaction=False)
        for request in requests:
            self.scripts[request.script](keys=request.keys, args=request.args, client=pipe)
        replies = pipe.execute(raise_on_error=False)
        return [reply if isinstance(reply, Exception) else request.parse(reply)
                for request, reply in zip(requests, replies, strict=True)]  # fmt: skip


class AsyncStore:
    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self.scripts = register(client)
        self.batch = Batcher(client, self.scripts)

    async def run(self, request: ScriptCall[T] | Command[T]) -> T:
        if isinstance(request, ScriptCall):
            sha = self.scripts[request.script].sha
            command = ("EVALSHA", sha, len(request.keys), *request.keys, *request.args)
            raw = await self.batch.send(request.script, command)
        else:
            raw = await self.batch.send(None, request.args)
        return request.parse(raw)
