from __future__ import annotations

import math

import pytest

from dothis.wire import codec


@pytest.mark.parametrize(
    "text",
    ["NaN", '{"a": Infinity}', '{"a": -Infinity}', '{"a": 1, "a": 2}', "[" * 65 + "]" * 65,
     "1" * 5000, "{", '{"a": }', "'single'"],
)  # fmt: skip
def test_decode_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        codec.decode(text)


def test_decode_deep_nesting_is_a_value_error_not_recursion() -> None:
    with pytest.raises(ValueError, match="nesting"):
        codec.decode("[" * 100_000 + "]" * 100_000)


def test_decode_accepts_brackets_inside_strings() -> None:
    assert codec.decode('{"a": "' + "[" * 200 + '"}') == {"a": "[" * 200}


@pytest.mark.parametrize("value", [0, False, "", None, [], {}, {"nested": [1, 2.5, "x"]}])
def test_round_trip(value: object) -> None:
    assert codec.decode(codec.encode(value)) == value


@pytest.mark.parametrize("value", [math.nan, math.inf, {1, 2}, object(), b"bytes"])
def test_encode_rejects(value: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        codec.encode(value)
