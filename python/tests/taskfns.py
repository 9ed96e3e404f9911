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
def whoami(seconds: float) -> int:
    """Sleep, then return the process id that ran this try."""
    import os

    time.sleep(seconds)
    return os.getpid()


@task
def unserializable() -> Any:
    return {1, 2}


@task
def flaky(url: str, key: str, succeed_on: int) -> int:
    """Fail until this is the ``succeed_on``-th try (counted in Redis), then return the count."""
    import redis

    client = redis.Redis.from_url(url)
    count = int(client.incr(key))
    client.close()
    if count < succeed_on:
        raise ValueError(f"try {count} fails")
    return count


@task
def retry_later(delay: float) -> None:
    from dothis import Retry

    raise Retry("not ready yet", delay=delay)


@task
def spin(seconds: float) -> str:
    """Busy-loop without yielding, as CPU-bound code does."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass
    return "done"


@task
def die(status: int) -> None:
    import os

    os._exit(status)


@task
def noted(id: str, outcome: str, value: Any, error: Any) -> dict[str, Any]:
    """A callback: return what it was told."""
    return {"id": id, "outcome": outcome, "value": value, "error": error}


@task(attempts=3, description="adds with defaults")
def add_later(a: int, b: int) -> int:
    return a + b
