"""Comparisons used by the expectation steps."""

from __future__ import annotations

import json
import re
from typing import Any

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")


def json_equal(a: Any, b: Any) -> bool:
    """Deep equality that keeps JSON types apart (false != 0, 1 != "1")."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=False))
    return type(a) is type(b) and a == b


def is_optional(matcher: Any) -> bool:
    return isinstance(matcher, dict) and bool(matcher.get("optional"))


def describe(matcher: Any) -> str:
    if isinstance(matcher, str):
        return json.dumps(matcher, ensure_ascii=False)
    return json.dumps({k: v for k, v in matcher.items() if k != "optional"}, ensure_ascii=False)


def match(matcher: Any, value: str | None) -> str | None:
    """None when value matches; otherwise why not. value None means the field/item is missing."""
    if value is None:
        return None if is_optional(matcher) else f"missing, expected {describe(matcher)}"
    if isinstance(matcher, str):
        return None if value == matcher else f"{value!r} != expected {matcher!r}"
    if "equals" in matcher and value != matcher["equals"]:
        return f"{value!r} != expected {matcher['equals']!r}"
    if "match" in matcher and not re.fullmatch(matcher["match"], value, re.S):
        return f"{value!r} does not match /{matcher['match']}/"
    if "contains" in matcher and matcher["contains"] not in value:
        return f"{value!r} does not contain {matcher['contains']!r}"
    if "timestamp" in matcher and not TIMESTAMP.match(value):
        return f"{value!r} is not an ISO-8601 UTC timestamp with microseconds and Z"
    if "json" in matcher or "json_object" in matcher:
        try:
            parsed = json.loads(value)
        except ValueError:
            return f"{value!r} is not JSON"
        if "json" in matcher and not json_equal(parsed, matcher["json"]):
            return f"{value!r} is JSON {parsed!r}, expected {matcher['json']!r}"
        if "json_object" in matcher:
            if not isinstance(parsed, dict):
                return f"{value!r} is not a JSON object"
            for name, sub in matcher["json_object"].items():
                if name not in parsed:
                    problem = match(sub, None)
                elif isinstance(parsed[name], str):
                    problem = match(sub, parsed[name])
                elif isinstance(sub, dict) and "json" in sub and json_equal(parsed[name], sub["json"]):
                    problem = None
                else:
                    problem = f"{parsed[name]!r}, expected {describe(sub)}"
                if problem:
                    return f"member {name!r}: {problem}"
    return None


def decode(raw: bytes | str) -> str:
    """Redis bytes shown as text; invalid UTF-8 stays visible as \\x escapes."""
    return raw if isinstance(raw, str) else raw.decode("utf-8", errors="backslashreplace")
