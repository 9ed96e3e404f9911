"""A fast-forward protocol clock for tests.

Every time the protocol reads (``dothis.wire.clock``: delays, retries, ttl, leases, schedules) is
this machine's clock plus an offset, which a Queue or a worker measures against Redis's ``TIME``
(SPEC.md 9.8). ``Clock.advance`` adds to that offset, so tasks scheduled for later are due at once
for the next burst (``run_queued``) or in-process worker, and periodic and cron schedules reach
their next occurrence. A measurement taken while the clock is advanced keeps the advance.

It moves the clock of this process only: a worker in another process does not see it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from dothis.store import clock as store_clock
from dothis.wire import clock as wire_clock


class Clock:
    """``with Clock() as clock: clock.advance(3600)``; leaving puts the offset back."""

    def __init__(self) -> None:
        self.advanced_ms = 0
        # store.clock's binding of set_offset: where measure() and measure_async() write.
        self._measured: Callable[[int], None] = vars(store_clock)["set_offset"]
        self._active = False

    def start(self) -> Clock:
        if not self._active:
            self._active = True
            # A measurement (a Queue's first enqueue, a worker's clock check) keeps the advance.
            vars(store_clock)["set_offset"] = self._set_measured
        return self

    def _set_measured(self, milliseconds: int) -> None:
        self._measured(milliseconds + self.advanced_ms)

    def advance(self, seconds: float | timedelta) -> datetime:
        """Move the protocol clock forward by ``seconds``; returns the protocol time now."""
        amount = seconds.total_seconds() if isinstance(seconds, timedelta) else seconds
        if amount < 0:
            raise ValueError("the protocol clock only moves forward")
        self.start()
        step = round(amount * 1000)
        self.advanced_ms += step
        wire_clock.set_offset(wire_clock.offset_ms() + step)
        return self.now()

    @staticmethod
    def now() -> datetime:
        """The protocol's current time (aware, UTC)."""
        return wire_clock.now()

    def stop(self) -> None:
        """Take the advance back out of the offset and stop keeping it in measurements."""
        if self._active:
            vars(store_clock)["set_offset"] = self._measured
            wire_clock.set_offset(wire_clock.offset_ms() - self.advanced_ms)
            self.advanced_ms = 0
            self._active = False

    def __enter__(self) -> Clock:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
