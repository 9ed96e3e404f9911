"""The worker's prefetch: a fixed count, or auto (as many tasks as it starts within the window at
the pace of its recent tries)."""

from __future__ import annotations

import pytest

from dothis.worker.options import WorkerOptions
from dothis.worker.prefetch import MAX_AUTO, WINDOW, Prefetch


def test_a_fixed_prefetch_does_not_move() -> None:
    prefetch = Prefetch(5, concurrency=2)
    for seconds in (0.0001, 10.0):
        prefetch.observe(seconds)
        assert prefetch.current() == 5
    assert prefetch.describe() == "5"


def test_auto_claims_nothing_ahead_before_it_has_seen_a_try() -> None:
    assert Prefetch(None, concurrency=4).current() == 0
    assert WorkerOptions().prefetch is None  # auto is the default


def test_auto_claims_ahead_for_short_tries_and_stops_for_slow_ones() -> None:
    prefetch = Prefetch(None, concurrency=1)
    for _ in range(30):
        prefetch.observe(0.0001)
    assert prefetch.current() == MAX_AUTO  # 500 would fit in the window: capped
    for _ in range(30):
        prefetch.observe(WINDOW / 4)
    assert prefetch.current() == 4  # four of them fill the window
    prefetch.observe(30.0)  # one slow try is enough to stop claiming ahead
    assert prefetch.current() == 0


def test_auto_scales_with_concurrency() -> None:
    single, four = Prefetch(None, concurrency=1), Prefetch(None, concurrency=4)
    for prefetch in (single, four):
        prefetch.observe(WINDOW / 2)
    assert (single.current(), four.current()) == (2, 8)


@pytest.mark.parametrize("bad", [-1, -10])
def test_a_negative_prefetch_is_refused(bad: int) -> None:
    with pytest.raises(ValueError, match="prefetch"):
        WorkerOptions(prefetch=bad)
