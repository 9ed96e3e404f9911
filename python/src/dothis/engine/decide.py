"""The decision after a try, as pure functions: from what a try produced and the task's settings
to "the task ended with outcome X" (an Ending) or "try again at T" (a NextTry).

No I/O and no clock of its own: ``now_ms`` and the backoff's ``jitter`` are arguments, so every
branch is unit-tested without Redis.
"""

from __future__ import annotations

from dataclasses import dataclass

from dothis.engine.tries import (
    Crashed,
    Raised,
    RetryRequested,
    Returned,
    Stopped,
    TimedOut,
    TooLarge,
    TryResult,
    Unserializable,
)
from dothis.wire.checks import Settings
from dothis.wire.clock import iso_from_ms
from dothis.wire.protocol import (
    DEFAULT_RETRY_BASE_MS,
    DEFAULT_RETRY_MAX_MS,
    ErrorCode,
    Field,
    Outcome,
    State,
)
from dothis.wire.records import Ending, Failure, NextTry

RETRYABLE = (ErrorCode.EXCEPTION, ErrorCode.TIMEOUT, ErrorCode.CRASHED)

Decision = Ending | NextTry


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with equal jitter: ``base * 2**retries``, capped, then half of it
    fixed and half random."""

    base_ms: int = DEFAULT_RETRY_BASE_MS
    max_ms: int = DEFAULT_RETRY_MAX_MS

    def backoff_ms(self, retries: int, jitter: float) -> int:
        """``jitter`` in [0.5, 1]: the fraction of the ceiling to wait."""
        ceiling = min(self.max_ms, self.base_ms * 2 ** min(retries, 30))
        return int(ceiling * jitter)


def succeeded(encoded: str, now_ms: int) -> Ending:
    """The ending of a try that returned; ``encoded`` is the JSON text of the value."""
    # This order makes HGETALL list the fields as the original key schema shows them.
    return Ending(Outcome.SUCCESSFUL, [
        Field.STATE, State.FINISHED,
        Field.RESULT_VALUE, encoded,
        Field.RESULT, Outcome.SUCCESSFUL,
        Field.FINISHED_CREATED, iso_from_ms(now_ms),
    ])  # fmt: skip


def ended(failure: Failure, now_ms: int, outcome: Outcome = Outcome.FAILED) -> Ending:
    """The ending of a task that did not succeed."""
    return Ending(outcome, [
        Field.STATE, State.FINISHED,
        Field.RESULT, outcome,
        Field.ERROR_CODE, failure.code,
        Field.ERROR_REASON, failure.reason,
        Field.ERROR_EXCEPTION, failure.exception,
        Field.FINISHED_CREATED, iso_from_ms(now_ms),
    ])  # fmt: skip


def before_start(failure: Failure, now_ms: int) -> Ending:
    """The ending of a task stopped by a check before it ran (cancelled, expired, bad input)."""
    outcome = {ErrorCode.CANCELLED: Outcome.CANCELLED, ErrorCode.EXPIRED: Outcome.EXPIRED}
    return ended(failure, now_ms, outcome.get(failure.code, Outcome.FAILED))


def decide(
    result: TryResult,
    function: str,
    settings: Settings,
    policy: RetryPolicy,
    now_ms: int,
    jitter: float = 1.0,
) -> Decision:
    """What follows a try of ``function`` that produced ``result``."""
    if isinstance(result, Returned):
        return succeeded(result.encoded, now_ms)
    if isinstance(result, Unserializable):
        return ended(
            Failure(
                ErrorCode.UNSERIALIZABLE_RESULT,
                f"the function returned a {result.type_name} with no JSON form: {result.error}",
            ),
            now_ms,
        )
    if isinstance(result, TooLarge):  # not retried: the same value would be as large again
        return ended(Failure(ErrorCode.TOO_LARGE, result.detail), now_ms)
    if isinstance(result, Stopped):
        return ended(Failure(ErrorCode.CANCELLED, f"{function} was cancelled while it ran"),
                     now_ms, Outcome.CANCELLED)  # fmt: skip
    delay_ms: int | None = None
    if isinstance(result, RetryRequested):
        failure = Failure(ErrorCode.EXCEPTION, result.reason)
        delay_ms = None if result.delay is None else max(int(result.delay * 1000), 0)
    elif isinstance(result, TimedOut):
        failure = Failure(ErrorCode.TIMEOUT, f"{function} ran longer than its {result.seconds} s "
                          "timeout and was stopped")  # fmt: skip
    elif isinstance(result, Crashed):
        failure = Failure(ErrorCode.CRASHED, result.detail)
    else:
        assert isinstance(result, Raised)
        failure = Failure(ErrorCode.EXCEPTION, result.reason, result.traceback)
    if failure.code in RETRYABLE and settings.retries + 1 < settings.attempts:
        wait = policy.backoff_ms(settings.retries, jitter) if delay_ms is None else delay_ms
        return next_try(failure, settings.retries + 1, now_ms + wait)
    if isinstance(result, RetryRequested):
        failure = Failure(ErrorCode.EXCEPTION, f"retry requested after the last of "
                          f"{settings.attempts} attempt(s): {failure.reason}")  # fmt: skip
    return ended(failure, now_ms)


def next_try(failure: Failure, retries: int, due_ms: int) -> NextTry:
    return NextTry(due_ms, [
        Field.STATE, State.SCHEDULED,
        Field.RETRIES, str(retries),
        Field.SCHEDULED_FOR, iso_from_ms(due_ms),
        Field.ERROR_CODE, failure.code,
        Field.ERROR_REASON, failure.reason,
        Field.ERROR_EXCEPTION, failure.exception,
    ])  # fmt: skip
