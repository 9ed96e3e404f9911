"""Requests made while a pipeline is in flight are sent together in the next one.

Under load the worker's start, finish and retry calls for many tasks share one round trip each;
with a single request in flight nothing waits (it is sent at once when no pipeline is out). One
pipeline at a time, not several on connections of their own: with two, claims went out sooner in
smaller batches, which cost more per task than the wait they saved (measured with bench/:
``--pool inline --prefetch 100`` drained about a third slower, the default worker no faster).

A batch goes out as one write of commands packed by hiredis, on one connection of the client's
pool, and its replies are read back in order: none of the per-command bookkeeping of a redis-py
pipeline, which costs more than the round trip once many tasks share it. A cluster client (whose
commands go to the node of their slot) uses a redis-py pipeline.
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
from collections.abc import Mapping
from typing import Any

import redis
import redis.exceptions
from hiredis import pack_command as _hiredis_pack
from redis.asyncio import Redis as AsyncClient
from redis.exceptions import NoScriptError

Queued = tuple[Any, tuple[Any, ...], asyncio.Future[Any]]


class Direct:
    """The same for a synchronous client (a producer): commands packed by hiredis in one write on
    one connection, their replies read in order, without redis-py's per-command bookkeeping
    (which costs as much as the round trip itself for one enqueue).

    The connection is one this Direct keeps (taken from the client's pool once, and again after
    a failure or a fork), so a send costs no checkout from the pool; a send made while another
    thread's send holds it takes a connection from the pool as usual."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._lock = threading.Lock()
        self._kept: Any = None  # the connection kept, and the process it belongs to
        self._pid = 0

    @classmethod
    def of(cls, client: Any) -> Direct | None:
        """A Direct for a client of one server (or of Sentinel's primary); None for a cluster
        client, whose commands go to the node of their slot."""
        plain = isinstance(client, redis.Redis) and getattr(client, "connection_pool", None)
        return cls(client) if plain else None

    def send(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Each command's reply, a refusal as its ResponseError; a connection error raises."""
        pool: Any = self.client.connection_pool
        if not self._lock.acquire(blocking=False):  # another thread sends: a pooled connection
            connection = pool.get_connection()
            try:
                return self._exchange(connection, commands)
            finally:
                pool.release(connection)
        try:
            if self._kept is None or self._pid != os.getpid():
                self._kept, self._pid = pool.get_connection(), os.getpid()
            try:
                return self._exchange(self._kept, commands)
            except BaseException:  # disconnected by _exchange: back to the pool, a new one next
                pool.release(self._kept)
                self._kept = None
                raise
        finally:
            self._lock.release()

    def _exchange(self, connection: Any, commands: list[tuple[Any, ...]]) -> list[Any]:
        callbacks: Any = self.client.response_callbacks
        try:
            connection.send_packed_command([_pack(connection, commands)], check_health=False)
            replies = []
            for command in commands:
                try:
                    reply = connection.read_response()
                except redis.exceptions.ResponseError as error:
                    replies.append(error)
                    continue
                callback = callbacks.get(_name(command))
                replies.append(reply if callback is None else callback(reply))
            return replies
        except BaseException:
            connection.disconnect()  # replies may be left unread on it
            raise


class Batcher:
    """Sends raw commands (EVALSHA included) in batches; ``scripts`` reloads on NOSCRIPT."""

    def __init__(self, client: AsyncClient, scripts: dict[str, Any], limit: int = 500) -> None:
        self.client = client
        self.scripts = scripts
        self.limit = limit
        self._queued: list[Queued] = []
        self._flushing = False
        self._flusher: asyncio.Task[None] | None = None
        pool = getattr(client, "connection_pool", None)
        self._direct = isinstance(client, AsyncClient) and pool is not None
        self._timeout: float | None = pool.connection_kwargs.get("socket_timeout") if pool else None

    async def send(self, script: str | None, command: tuple[Any, ...]) -> Any:
        """``command`` as sent; ``script`` names the script of an EVALSHA, else None."""
        return await self.submit(script, command)

    def submit(self, script: str | None, command: tuple[Any, ...]) -> asyncio.Future[Any]:
        """Queue ``command`` now (it goes in the next batch); the future of its reply."""
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
        commands = [command for _, command, _ in batch]
        try:
            replies = await (self._direct_replies(commands) if self._direct
                             else self._pipeline_replies(commands))  # fmt: skip
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

    async def _pipeline_replies(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for command in commands:
            # EVALSHA itself: a pipeline of Script objects first asks SCRIPT EXISTS, one more
            # round trip per batch. NOSCRIPT replies are handled by the caller.
            pipe.execute_command(*command)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        return replies

    async def _direct_replies(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """One write, then each reply in order (a refusal as its ResponseError), with the
        client's response callbacks applied as redis-py applies them."""
        pool: Any = self.client.connection_pool
        connection = await pool.get_connection()
        try:
            async with asyncio.timeout(self._timeout):
                await connection.send_packed_command(_pack(connection, commands),
                                                     check_health=False)  # fmt: skip
                return [await _reply(connection, command, self.client.response_callbacks)
                        for command in commands]  # fmt: skip
        except TimeoutError:
            await connection.disconnect(nowait=True)
            raise redis.exceptions.TimeoutError("Timeout reading from socket") from None
        except BaseException:
            await connection.disconnect(nowait=True)  # replies may be left unread on it
            raise
        finally:
            await pool.release(connection)


def _pack(connection: Any, commands: list[tuple[Any, ...]]) -> bytes:
    parts = []
    for command in commands:
        try:
            parts.append(_hiredis_pack(command))
        except (TypeError, ValueError):  # an argument hiredis does not take: redis-py's encoder
            parts.append(b"".join(connection.pack_command(*command)))
    return b"".join(parts)


async def _reply(connection: Any, command: tuple[Any, ...],
                 callbacks: Mapping[Any, Any]) -> Any:  # fmt: skip
    try:
        reply = await connection.read_response(timeout=math.inf)  # the batch's timeout holds
    except redis.exceptions.ResponseError as error:
        return error
    callback = callbacks.get(_name(command))
    return reply if callback is None else callback(reply)


def _name(command: tuple[Any, ...]) -> str:
    name = command[0]
    return name.upper() if isinstance(name, str) else bytes(name).decode().upper()
