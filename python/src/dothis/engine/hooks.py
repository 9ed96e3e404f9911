"""Startup and shutdown hooks (``@dothis.on_startup``, ``@dothis.on_shutdown``): called once in
each process that runs tasks, plain functions or ``async def`` ones alike."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Sequence
from typing import Any

log = logging.getLogger("dothis.worker")


async def await_hooks(hooks: Sequence[Callable[[], Any]]) -> None:
    """In the worker's event loop: each hook in order; an error propagates (the worker does not
    start when its startup fails)."""
    for hook in hooks:
        result = hook()
        if inspect.isawaitable(result):
            await result


def call_hooks(hooks: Sequence[Callable[[], Any]], when: str) -> None:
    """In a process without an event loop (a pool child): each hook in order; an error is
    logged with its traceback, and the process goes on."""
    for hook in hooks:
        try:
            result = hook()
            if inspect.iscoroutine(result):
                asyncio.run(result)
        except Exception:
            log.exception("the %s hook %s failed", when, getattr(hook, "__name__", hook))
