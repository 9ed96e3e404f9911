"""Redis faults read in one line, and reported once per episode (SPEC.md 4.4)."""

from __future__ import annotations

import logging

from redis import exceptions

from dothis.store.faults import Episodes, describe, report


def test_redis_py_classes_without_the_code_in_their_message_are_described() -> None:
    readonly = exceptions.ReadOnlyError("You can't write against a read only replica.")
    assert describe(readonly).startswith("Redis is a read-only replica")
    assert describe(exceptions.OutOfMemoryError("command not allowed")).startswith(
        "Redis is out of memory"
    )
    unblocked = exceptions.ResponseError(
        "UNBLOCKED force unblock from blocking operation, instance state changed"
    )
    assert "failover" in describe(unblocked)
    assert describe(exceptions.ResponseError("ERR something else")) == "ERR something else"


def test_one_warning_per_kind_of_fault_within_the_quiet_period() -> None:
    episodes = Episodes(quiet_seconds=60)
    readonly = exceptions.ReadOnlyError("You can't write against a read only replica.")
    unblocked = exceptions.ResponseError("UNBLOCKED force unblock from blocking operation")
    oom = exceptions.OutOfMemoryError("command not allowed when used memory > 'maxmemory'")
    # a failover shows first as UNBLOCKED (the claim loop), then as READONLY (every write)
    assert episodes.level(unblocked) == logging.WARNING
    assert episodes.level(readonly) == logging.DEBUG
    assert episodes.level(readonly) == logging.DEBUG
    assert episodes.level(oom) == logging.WARNING  # another fault is news
    assert episodes.level(ConnectionError("gone")) == logging.WARNING


def test_a_fault_is_reported_again_after_the_quiet_period() -> None:
    episodes = Episodes(quiet_seconds=0)
    readonly = exceptions.ReadOnlyError("read only")
    assert episodes.level(readonly) == logging.WARNING
    assert episodes.level(readonly) == logging.WARNING


def test_report_names_the_cause_and_that_it_retries(caplog) -> None:  # type: ignore[no-untyped-def]
    log = logging.getLogger("dothis.test.faults")
    error = exceptions.NoPermissionError("this user has no permissions to run the 'evalsha'")
    with caplog.at_level(logging.DEBUG, logger="dothis.test.faults"):
        report(log, error, "cannot record the outcome of %s", "t1")
    (record,) = caplog.records
    assert record.getMessage().startswith("cannot record the outcome of t1: the Redis user lacks")
    assert record.getMessage().endswith("; retrying")
