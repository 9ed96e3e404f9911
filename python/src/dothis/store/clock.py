"""The offset of this machine's clock to the Redis server's ``TIME`` (SPEC.md 9.8)."""

from __future__ import annotations

import time
from typing import Any, cast

from dothis.store.execute import AsyncStore, SyncStore
from dothis.store.ops import Command
from dothis.wire.clock import set_offset


def _time_ms(raw: Any) -> int:
    seconds, micros = raw
    return int(seconds) * 1000 + int(micros) // 1000


TIME = Command(("TIME",), _time_ms)


def _offset(redis_ms: int, before_ns: int, after_ns: int) -> int:
    """Redis's time minus ours at the moment TIME ran (the middle of the round trip)."""
    return redis_ms - (before_ns + after_ns) // 2 // 1_000_000


def measure(store: SyncStore) -> int:
    """Measure and set the offset; return it in ms."""
    before = time.time_ns()
    redis_ms = store.run(TIME)
    offset = _offset(redis_ms, before, time.time_ns())
    set_offset(offset)
    return offset


async def measure_async(store: AsyncStore) -> int:
    before = time.time_ns()
    raw = await cast(Any, store.client).execute_command("TIME")  # unbatched: the trip counts
    offset = _offset(_time_ms(raw), before, time.time_ns())
    set_offset(offset)
    return offset
