"""Time as the protocol writes it: ISO-8601 UTC timestamps and milliseconds since the epoch.

One clock (SPEC.md 9.8): every reading here is this machine's clock corrected by its offset to
the Redis server's ``TIME``, which workers and producers measure (``set_offset``), so that ttl,
delays, retries, schedules, leases and registry trimming agree however far the machines' clocks
drift apart.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

ISO_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


_offset = {"ms": 0}


def set_offset(milliseconds: int) -> None:
    """Redis's clock minus this machine's, in ms (measured against ``TIME``)."""
    _offset["ms"] = milliseconds


def offset_ms() -> int:
    return _offset["ms"]


def now_iso() -> str:
    """The current time as the protocol writes it: ISO-8601 UTC, microseconds, Z."""
    return iso_from_us(time.time_ns() // 1000 + _offset["ms"] * 1000)


def iso_from_ms(epoch_ms: int) -> str:
    return iso_from_us(epoch_ms * 1000)


_second: dict[str, tuple[int, str]] = {"last": (-1, "")}  # one whole second, formatted


def iso_from_us(epoch_us: int) -> str:
    """Microseconds since the epoch as ISO-8601 UTC (the text of ``ISO_FORMAT``); the whole
    second is formatted once per second, not once per call (every task start writes one)."""
    seconds, micros = divmod(epoch_us, 1_000_000)
    cached, text = _second["last"]
    if cached != seconds:
        text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _second["last"] = (seconds, text)
    return f"{text}.{micros:06d}Z"


def now_ms() -> int:
    """Milliseconds since the epoch: the score of the scheduled and failed sorted sets."""
    return time.time_ns() // 1_000_000 + _offset["ms"]


def now() -> datetime:
    """The current time as an aware datetime."""
    return datetime.fromtimestamp(now_ms() / 1000, UTC)


def parse_iso(text: str) -> datetime:
    """A protocol timestamp as an aware datetime; ValueError when it is not one."""
    return datetime.strptime(text, ISO_FORMAT).replace(tzinfo=UTC)


def ms_from_iso(text: str) -> int:
    return int(parse_iso(text).timestamp() * 1000)
