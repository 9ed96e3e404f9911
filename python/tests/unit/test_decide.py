"""The decision after a try, every branch, without Redis (engine/decide.py)."""

from __future__ import annotations

import pytest

from dothis.engine.decide import RetryPolicy, before_start, decide
from dothis.engine.tries import (
    Crashed,
    Raised,
    RetryRequested,
    Returned,
    Stopped,
    TimedOut,
    Unserializable,
)
from dothis.wire.checks import Settings
from dothis.wire.protocol import ErrorCode, Outcome
from dothis.wire.records import Ending, Failure, NextTry

NOW = 1_700_000_000_000
POLICY = RetryPolicy(base_ms=1_000, max_ms=300_000)


def fields(decision: Ending | NextTry) -> dict[str, str]:
    flat = [str(item) for item in decision.fields]
    return dict(zip(flat[::2], flat[1::2], strict=True))


def test_a_returned_value_succeeds() -> None:
    decision = decide(Returned("[1,2]"), "f", Settings(), POLICY, NOW)
    assert isinstance(decision, Ending) and decision.outcome is Outcome.SUCCESSFUL
    assert not decision.failed
    assert fields(decision)["result-value"] == "[1,2]"
    assert fields(decision)["finished-created"] == "2023-11-14T22:13:20.000000Z"


def test_an_unserializable_value_fails_at_once_even_with_attempts_left() -> None:
    decision = decide(Unserializable("set", "no JSON"), "f", Settings(attempts=3), POLICY, NOW)
    assert isinstance(decision, Ending)
    assert fields(decision)["error-code"] == ErrorCode.UNSERIALIZABLE_RESULT


def test_a_cancel_while_running_ends_cancelled() -> None:
    decision = decide(Stopped(), "f", Settings(attempts=3), POLICY, NOW)
    assert isinstance(decision, Ending) and decision.outcome is Outcome.CANCELLED
    assert decision.failed and fields(decision)["error-code"] == ErrorCode.CANCELLED


@pytest.mark.parametrize(
    ("result", "code"),
    [(Raised("boom", "Traceback"), ErrorCode.EXCEPTION), (TimedOut(2.0), ErrorCode.TIMEOUT),
     (Crashed("killed by SIGKILL"), ErrorCode.CRASHED)],
)  # fmt: skip
def test_retryable_failures_retry_while_attempts_remain(result, code) -> None:
    decision = decide(result, "f", Settings(attempts=3, retries=1), POLICY, NOW, jitter=0.5)
    assert isinstance(decision, NextTry)
    assert decision.due_ms == NOW + 1_000  # base 1 s * 2**1, half of it (jitter 0.5)
    assert fields(decision)["retries"] == "2" and fields(decision)["error-code"] == code
    assert fields(decision)["state"] == "scheduled"
    last = decide(result, "f", Settings(attempts=3, retries=2), POLICY, NOW)
    assert isinstance(last, Ending) and fields(last)["error-code"] == code


def test_the_traceback_of_an_exception_is_kept() -> None:
    decision = decide(Raised("boom", "Traceback (most recent call last)"), "f", Settings(),
                      POLICY, NOW)  # fmt: skip
    assert fields(decision)["error-exception"].startswith("Traceback")


def test_a_requested_retry_honours_its_delay_and_says_so_when_attempts_run_out() -> None:
    decision = decide(RetryRequested("busy", 2.5), "f", Settings(attempts=2), POLICY, NOW)
    assert isinstance(decision, NextTry) and decision.due_ms == NOW + 2_500
    zero = decide(RetryRequested("now", 0), "f", Settings(attempts=2), POLICY, NOW)
    assert isinstance(zero, NextTry) and zero.due_ms == NOW
    last = decide(RetryRequested("busy", 2.5), "f", Settings(attempts=2, retries=1), POLICY, NOW)
    assert isinstance(last, Ending)
    assert "retry requested after the last of 2 attempt(s): busy" in fields(last)["error-reason"]


def test_backoff_doubles_and_is_capped() -> None:
    policy = RetryPolicy(base_ms=100, max_ms=1_000)
    assert [policy.backoff_ms(n, 1.0) for n in range(6)] == [100, 200, 400, 800, 1000, 1000]
    assert policy.backoff_ms(2, 0.5) == 200
    assert policy.backoff_ms(10_000, 1.0) == 1000  # no overflow on a huge retries count


@pytest.mark.parametrize(
    ("code", "outcome"),
    [(ErrorCode.CANCELLED, Outcome.CANCELLED), (ErrorCode.EXPIRED, Outcome.EXPIRED),
     (ErrorCode.UNKNOWN_FUNCTION, Outcome.FAILED), (ErrorCode.TOO_LARGE, Outcome.FAILED)],
)  # fmt: skip
def test_checks_before_a_try_end_with_their_outcome(code, outcome) -> None:
    ending = before_start(Failure(code, "why"), NOW)
    assert ending.outcome is outcome and fields(ending)["result"] == outcome
    assert fields(ending)["error-reason"] == "why"
