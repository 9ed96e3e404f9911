"""Time as the protocol writes it: ISO-8601 UTC timestamps and milliseconds since the epoch."""

from __future__ import annotations

import time
from datetime import UTC, datetime

ISO_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def now_iso() -> str:
    """The current time as the protocol writes it: ISO-8601 UTC, microseconds, Z."""
    return datetime.now(UTC).strftime(ISO_FORMAT)


def iso_from_ms(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).strftime(ISO_FORMAT)


def now_ms() -> int:
    """Milliseconds since the epoch: the score of the scheduled and failed sorted sets."""
    return time.time_ns() // 1_000_000


def parse_iso(text: str) -> datetime:
    """A protocol timestamp as an aware datetime; ValueError when it is not one."""
    return datetime.strptime(text, ISO_FORMAT).replace(tzinfo=UTC)


def ms_from_iso(text: str) -> int:
    return int(parse_iso(text).timestamp() * 1000)
