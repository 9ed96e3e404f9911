"""The checker itself, on made-up histories (no Redis)."""

from __future__ import annotations

from collections import Counter

import pytest

from chaos.checker import Row, check, render

pytestmark = pytest.mark.chaos

OK = (b"successful", None)


def test_clean_history() -> None:
    verdict = check(["a", "b"], ["a", "b"], Counter(a=1, b=1), {"a": OK, "b": OK})
    assert not verdict.lost and not verdict.unexpected and not verdict.duplicated
    assert verdict.extra == 0 and verdict.executed == 2


def test_lost_unexpected_duplicated_recovered() -> None:
    verdict = check(
        attempted=["a", "b", "c", "d", "e"],
        acknowledged=["a", "b", "c", "d"],
        executions=Counter(a=3, c=1, e=1, z=1, d=1),
        outcomes={"a": OK, "b": (None, None), "c": (b"failed", b"worker-lost"), "d": OK},
    )
    assert verdict.lost == ["b", "c"]  # never ran; ran but its hash failed
    assert verdict.unexpected == ["z"]
    assert verdict.duplicated == {"a": 3} and verdict.extra == 2
    assert verdict.recovered == ["e"]  # attempted, not acknowledged, ran: allowed
    assert verdict.failed == {"c": "worker-lost"}


def test_successful_hash_without_an_execution_is_lost() -> None:
    verdict = check(["a"], ["a"], Counter(), {"a": OK})
    assert verdict.lost == ["a"]


def test_table() -> None:
    text = render([Row("1 x", "3 kills", 10, 0, 0, "1 (<= 6)", 1.25, "pass", ["note"])])
    lines = text.splitlines()
    assert lines[0].startswith("| scenario") and "| 1 x " in lines[2] and "1.2" in lines[2]
    assert lines[-1] == "- 1 x: note"


def test_stuck_counts_acknowledged_spans_over_the_bound() -> None:
    verdict = check(["a", "b", "c"], ["a", "b"], Counter(a=1, b=1),
                    {"a": OK, "b": OK}, spans={"a": 9.0, "b": 1.0, "z": 30.0},
                    bound=5.0)  # fmt: skip
    assert verdict.stuck == ["a"] and not verdict.lost  # "z" was never acknowledged
    assert not verdict.ok and "stuck=1 ['a']" in verdict.summary()
    unwatched = check(["a"], ["a"], Counter(a=1), {"a": OK}, spans={"a": 9.0})
    assert unwatched.stuck == [] and unwatched.bound is None  # no bound: nothing to judge


def test_expected_failures_are_not_lost_but_other_endings_are_wrong() -> None:
    verdict = check(
        attempted=["big", "huge", "r"],
        acknowledged=["big", "huge", "r"],
        executions=Counter(big=1, huge=1, r=1),
        outcomes={"big": (b"failed", b"too-large"), "huge": OK, "r": OK},
        expect={"big": "too-large", "huge": "too-large"},
    )
    assert verdict.lost == [] and verdict.wrong == {"huge": "successful"}
    assert not verdict.ok


def test_table_has_a_stuck_column() -> None:
    row = Row("7 x", "oom", 3, 0, 0, "0", 2.0, "pass", stuck=1)
    lines = render([row]).splitlines()
    assert "| stuck " in lines[0] and "| 1 " in lines[2]
