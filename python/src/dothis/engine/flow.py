"""Flows and their drivers.

A flow is a generator that yields requests and receives their replies: the store's requests
(``ScriptCall``, ``Command``) and the engine's own (``RunTry``, ``Sleep``, ``Step``). A driver runs
each request and sends the reply back, or throws the error it raised into the flow. The same flow
runs under the asyncio worker (``drive_async``) and synchronously in eager mode and the retask
consumer (``drive_sync``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

from dothis.engine.checks import Invocation
from dothis.engine.tries import TryResult
from dothis.store.execute import AsyncStore, SyncStore
from dothis.store.ops import Command, ScriptCall
from dothis.wire.records import Claim

T = TypeVar("T")

_STORE_REQUESTS = (ScriptCall, Command)  # what a flow sends to Redis


@dataclass(frozen=True)
class RunTry:
    """Run one try of ``invocation`` for the task ``claim`` holds."""

    invocation: Invocation
    claim: Claim


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Step:
    """A point of a task's handling (claimed, started, ran, finished), for crash tests."""

    name: str


Flow = Generator[Any, Any, T]


def drive_sync(flow: Flow[T], store: SyncStore, run_try: Callable[[RunTry], TryResult]) -> T:
    reply: Any = None
    error: BaseException | None = None
    while True:
        try:
            request = flow.send(reply) if error is None else flow.throw(error)
        except StopIteration as stop:
            result: T = stop.value
            return result
        reply, error = None, None
        try:
            if isinstance(request, _STORE_REQUESTS):
                reply = store.run(request)
            elif isinstance(request, RunTry):
                reply = run_try(request)
            elif isinstance(request, Sleep):
                time.sleep(request.seconds)
        except Exception as failed:
            error = failed


async def drive_async(
    flow: Flow[T],
    store: AsyncStore,
    run_try: Callable[[RunTry], Awaitable[TryResult]],
    step: Callable[[str], None],
) -> T:
    reply: Any = None
    error: BaseException | None = None
    while True:
        try:
            request = flow.send(reply) if error is None else flow.throw(error)
        except StopIteration as stop:
            result: T = stop.value
            return result
        reply, error = None, None
        try:
            if isinstance(request, _STORE_REQUESTS):
                reply = await store.run(request)
            elif isinstance(request, RunTry):
                reply = await run_try(request)
            elif isinstance(request, Sleep):
                await asyncio.sleep(request.seconds)
            elif isinstance(request, Step):
                step(request.name)
        except Exception as failed:
            error = failed
