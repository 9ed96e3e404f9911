"""Functions the tests register, beside dothis.examples."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import dothis.examples  # noqa: F401  (registers echo, add, sleep, fail)
from dothis import task

_lock = threading.Lock()
running = 0
most_running = 0


@task
def identity(value: Any) -> Any:
    return value


@task
async def async_add(a: int, b: int) -> int:
    await asyncio.sleep(0.01)
    return a + b


@task
def probe(seconds: float) -> int:
    """Sleep while counting how many probes run at once; return the most seen."""
    global running, most_running
    with _lock:
        running += 1
        most_running = max(most_running, running)
    time.sleep(seconds)
    with _lock:
        running -= 1
        return most_running


@task
def unserializable() -> Any:
    return {1, 2}
