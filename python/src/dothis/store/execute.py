"""Executors: run the requests of ``ops`` on a client and return their typed replies.

``SyncStore`` serves producers, eager mode and the retask consumer; ``AsyncStore`` serves the
worker and batches concurrent requests into pipelines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar, cast

import redis.exceptions

from dothis.store.acl import Request as Refused
from dothis.store.acl import explain_noperm
from dothis.store.batching import Batcher, Direct
from dothis.store.connection import AsyncClient, SyncClient
from dothis.store.ops import Command, ScriptCall
from dothis.store.scripts import Scripts, register

T = TypeVar("T")


def _denied(error: BaseException, request: ScriptCall[Any] | Command[Any]) -> BaseException:
    """``error``, or the PermissionDenied naming the rule to add when it is an ACL refusal."""
    if isinstance(request, ScriptCall):
        what = Refused(script=request.script, keys=tuple(request.keys))
    else:
        what = Refused(command=tuple(request.args))
    return explain_noperm(error, what) or error


def _as_sent(
    request: ScriptCall[Any] | Command[Any], scripts: Mapping[str, Any]
) -> tuple[Any, ...]:
    """The command as it goes to Redis: EVALSHA of the script's SHA1, or the plain command."""
    if isinstance(request, ScriptCall):
        sha = scripts[request.script].sha
        return ("EVALSHA", sha, len(request.keys), *request.keys, *request.args)
    return tuple(request.args)


class SyncStore:
    def __init__(self, client: SyncClient) -> None:
        self.client = client
        self.scripts = Scripts(client)  # each registered at its first use
        self.direct = Direct.of(client)  # None: a cluster client, whose commands go by slot

    def run(self, request: ScriptCall[T] | Command[T]) -> T:
        if self.direct is not None:
            [raw] = self._direct([request])
            if isinstance(raw, redis.exceptions.ResponseError):
                raise _denied(raw, request) from raw
            return request.parse(raw)
        try:
            if isinstance(request, ScriptCall):
                raw = self.scripts[request.script](keys=request.keys, args=request.args,
                                                   client=self.client)  # fmt: skip
            else:
                raw = cast(Any, self.client).execute_command(*request.args)
        except redis.exceptions.ResponseError as error:
            raise _denied(error, request) from error
        return request.parse(raw)

    def run_many(self, requests: Sequence[ScriptCall[Any]]) -> list[Any]:
        """Script calls in one round trip; each reply parsed, or the exception it raised."""
        if self.direct is not None:
            replies = self._direct(requests)
        else:
            pipe = self.client.pipeline(transaction=False)
            for request in requests:
                self.scripts[request.script](keys=request.keys, args=request.args, client=pipe)
            try:
                replies = pipe.execute(raise_on_error=False)
            except redis.exceptions.ResponseError as error:  # SCRIPT EXISTS / LOAD first
                raise _denied(error, requests[0]) from error
        return [_denied(reply, request) if isinstance(reply, Exception) else request.parse(reply)
                for request, reply in zip(requests, replies, strict=True)]  # fmt: skip

    def _direct(self, requests: Sequence[ScriptCall[Any] | Command[Any]]) -> list[Any]:
        """Raw replies (a refusal as its ResponseError). Calls that met NOSCRIPT (a restarted
        Redis, SCRIPT FLUSH: then every call of that script did) are sent again, in their order,
        once the script is loaded."""
        assert self.direct is not None
        commands = [_as_sent(request, self.scripts) for request in requests]
        replies = self.direct.send(commands)
        missing = [index for index, reply in enumerate(replies)
                   if isinstance(reply, redis.exceptions.NoScriptError)
                   and isinstance(requests[index], ScriptCall)]  # fmt: skip
        if missing:
            for name in {cast(ScriptCall[Any], requests[index]).script for index in missing}:
                self.client.script_load(self.scripts[name].script)
            again = self.direct.send([commands[index] for index in missing])
            for index, reply in zip(missing, again, strict=True):
                replies[index] = reply
        return replies


class AsyncStore:
    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self.scripts = register(client)
        self.batch = Batcher(client, self.scripts)

    async def run(self, request: ScriptCall[T] | Command[T]) -> T:
        try:
            raw = await self.batch.submit(*self._command(request))
        except redis.exceptions.ResponseError as error:
            raise _denied(error, request) from error
        return request.parse(raw)

    def _command(
        self, request: ScriptCall[Any] | Command[Any]
    ) -> tuple[str | None, tuple[Any, ...]]:
        """The script's name (None for a plain command) and the command as sent."""
        script = request.script if isinstance(request, ScriptCall) else None
        return script, _as_sent(request, self.scripts)
