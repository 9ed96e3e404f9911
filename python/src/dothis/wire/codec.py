"""Strict JSON for the wire: what a producer writes and what a worker accepts.

``json.loads`` alone accepts NaN, takes the last of duplicate keys and raises RecursionError on deep
nesting; ``decode`` turns each of those into a ``ValueError`` with a message, and ``encode`` refuses
what has no JSON form.
"""

from __future__ import annotations

import json
from typing import Any

from dothis.wire.protocol import JSON_MAX_DEPTH


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key[:64]!r}")
        result[key] = value
    return result


def _depth_problem(text: str, limit: int) -> str | None:
    """Nesting depth of JSON text, counted without recursion (brackets inside strings skipped)."""
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return f"nesting deeper than {limit}"
        elif char in "]}":
            depth -= 1
    return None


_decoder = json.JSONDecoder(object_pairs_hook=_unique_pairs, parse_constant=_reject_constant)


def decode(text: str, max_depth: int = JSON_MAX_DEPTH) -> Any:
    """Parse strict JSON; raise ValueError saying what is wrong."""
    if "[" in text or "{" in text:
        problem = _depth_problem(text, max_depth)
        if problem:
            raise ValueError(problem)
    try:
        return _decoder.decode(text)
    except RecursionError as error:
        raise ValueError(f"nesting deeper than {max_depth}") from error


# Made once: ``json.dumps`` with options makes an encoder per call, and a value is encoded per
# task (its arguments by the producer, its result by the worker).
_encoder = json.JSONEncoder(allow_nan=False, ensure_ascii=False, separators=(",", ":"))


def encode(value: Any) -> str:
    """Compact JSON; raise ValueError/TypeError for NaN, infinities and non-JSON types."""
    return _encoder.encode(value)


def encode_object(value: dict[str, Any]) -> str:
    """``encode`` of a dict (the arguments of a task)."""
    return _encoder.encode(value)
