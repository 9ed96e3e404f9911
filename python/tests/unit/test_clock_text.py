"""The protocol's timestamps as text: the same as datetime's ISO_FORMAT, whatever the instant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from dothis.wire import clock

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@given(st.integers(min_value=0, max_value=4_102_444_800_000_000))  # up to the year 2100
def test_microseconds_read_as_datetime_writes_them(epoch_us: int) -> None:
    expected = (EPOCH + timedelta(microseconds=epoch_us)).strftime(clock.ISO_FORMAT)
    assert clock.iso_from_us(epoch_us) == expected
    assert clock.iso_from_ms(epoch_us // 1000) == (
        EPOCH + timedelta(milliseconds=epoch_us // 1000)
    ).strftime(clock.ISO_FORMAT)


def test_now_follows_the_offset_to_the_redis_clock() -> None:
    try:
        clock.set_offset(3_600_000)
        ahead = datetime.strptime(clock.now_iso(), clock.ISO_FORMAT).replace(tzinfo=UTC)
    finally:
        clock.set_offset(0)
    assert abs((ahead - datetime.now(UTC)).total_seconds() - 3600) < 5
