"""Protocol values as a person reads them: JSON fields decoded or left as text, values
pretty-printed, ages of protocol timestamps and durations in short units. Shared by the command
line and the dashboard."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from dothis.wire import codec
from dothis.wire.clock import now, parse_iso


def decode_json(text: str | None) -> Any:
    """A JSON field's value, or the text itself when it is not JSON (None stays None)."""
    if text is None:
        return None
    try:
        return codec.decode(text)
    except ValueError:
        return text


def pretty(value: Any) -> str:
    """A decoded JSON value for a person: strings bare, the rest as indented JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False)


def age_seconds(timestamp: str | None, until: str | None = None) -> float | None:
    """Seconds from a protocol timestamp to ``until`` (another one) or now; None if unreadable."""
    if not timestamp:
        return None
    try:
        end: datetime = parse_iso(until) if until else now()
        return round(max(0.0, (end - parse_iso(timestamp)).total_seconds()), 3)
    except ValueError:
        return None


def duration(seconds: float | None) -> str:
    """``0.25s``, ``42s``, ``3m 05s``, ``2h 03m``, ``4d 02h``; ``-`` for None."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.2f}s"
    whole = int(seconds)
    for unit, size, small, small_size in (("d", 86400, "h", 3600), ("h", 3600, "m", 60),
                                          ("m", 60, "s", 1)):  # fmt: skip
        if whole >= size:
            return f"{whole // size}{unit} {whole % size // small_size:02d}{small}"
    return f"{whole}s"
