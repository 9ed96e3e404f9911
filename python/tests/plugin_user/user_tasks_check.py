"""An application's task tests, written as a user of dothis writes them: only the testing kit's
fixtures and helpers (run by tests/integration/test_testing_kit.py in a pytest of its own)."""

from __future__ import annotations

from typing import Any

import pytest

import dothis
from dothis import Queue, Registry, Retry
from dothis.testing import assert_enqueued, enqueued, run_queued

registry = Registry()
calls: list[str] = []


@dothis.task(registry=registry)
def add(a: int, b: int) -> int:
    return a + b


@dothis.task(registry=registry)
def f() -> str:
    return "ran"


@dothis.task(registry=registry)
def flaky(key: str) -> str:
    calls.append(key)
    if calls.count(key) == 1:
        raise Retry("not yet", delay=60)
    return "second time lucky"


@dothis.task(registry=registry)
def broken() -> None:
    raise ValueError("boom")


@dothis.task(registry=registry)
def notify(id: str, outcome: str, value: Any, error: Any) -> str:  # an on_success callback
    return f"{id} {outcome} {value}"


# The application's own tasks, in the default registry, queued with .delay() (eager tests below).
@dothis.task
def shout(text: str) -> str:
    return text.upper()


def test_the_plugin_came_by_its_entry_point_and_the_project_conftest_did_not(
    request: pytest.FixtureRequest,
) -> None:
    assert request.config.pluginmanager.get_plugin("dothis") is not None
    with pytest.raises(pytest.FixtureLookupError):
        request.getfixturevalue("redis_server")  # python/tests/conftest.py's


def test_enqueue_then_run(dothis_queue: Queue, dothis_worker: Any) -> None:
    dothis_queue.enqueue(add, a=2, b=3)
    info = assert_enqueued(dothis_queue, add, a=2)
    assert info.state == "pending"
    [ran] = dothis_worker.run(registry)
    assert (ran.function, ran.outcome, ran.value) == ("add", "successful", 5)
    assert ran.succeeded and ran.id == info.id
    assert enqueued(dothis_queue) == []
    assert dothis_worker.run(registry) == []  # nothing left


def test_each_test_gets_a_fresh_queue(dothis_queue: Queue) -> None:
    assert enqueued(dothis_queue) == []
    assert dothis_queue.name.startswith("test-")


def test_assert_enqueued_lists_what_is_there(dothis_queue: Queue) -> None:
    dothis_queue.enqueue(add, a=1, b=2)
    dothis_queue.enqueue("f", delay=60)
    assert [info.function for info in enqueued(dothis_queue, add)] == ["add"]
    with pytest.raises(AssertionError) as failure:
        assert_enqueued(dothis_queue, add, a=7)
    message = str(failure.value)
    assert "no task add(a=7) is enqueued" in message
    assert "pending   add(a=1, b=2)" in message
    assert "scheduled f() id=" in message and " due " in message


def test_a_delayed_task_runs_after_the_clock_moves(
    dothis_queue: Queue, dothis_worker: Any, dothis_clock: Any
) -> None:
    task = dothis_queue.enqueue("f", delay=3600)
    assert dothis_worker.run(registry) == []  # not due
    assert_enqueued(dothis_queue, "f")
    dothis_clock.advance(3600)
    [ran] = dothis_worker.run(registry)
    assert (ran.id, ran.value) == (task.id, "ran")


def test_a_retry_waits_for_the_clock(
    dothis_queue: Queue, dothis_worker: Any, dothis_clock: Any
) -> None:
    dothis_queue.enqueue(flaky, key="retry-test", attempts=2)
    [first] = dothis_worker.run(registry)
    assert first.retried and first.outcome is None and first.state == "scheduled"
    assert dothis_worker.run(registry) == []  # due in 60 s
    dothis_clock.advance(60)
    [second] = dothis_worker.run(registry)
    assert second.value == "second time lucky" and second.id == first.id


def test_callbacks_and_dependents_run_in_the_same_burst(
    dothis_queue: Queue, dothis_worker: Any
) -> None:
    dothis_worker.registry = registry
    first = dothis_queue.enqueue(add, a=1, b=1, on_success=notify)
    dothis_queue.enqueue(add, a=2, b=2, depends_on=first)
    ran = dothis_worker.run()
    # The callback is queued first, then the released dependent (engine/followups.py).
    assert [(r.function, r.value) for r in ran] == [
        ("add", 2),
        ("notify", f"{first.id} successful 2"),
        ("add", 4),
    ]


def test_a_failure_is_recorded_and_check_raises_it(dothis_queue: Queue) -> None:
    dothis_queue.enqueue(broken)
    [ran] = run_queued(dothis_queue, registry)
    assert ran.outcome == "failed" and ran.error_code == "exception"
    assert "boom" in (ran.error_reason or "")
    dothis_queue.enqueue(broken)
    with pytest.raises(AssertionError, match=r"1 of 1 task\(s\) did not succeed") as failure:
        run_queued(dothis_queue, registry, check=True)
    assert "ValueError: boom" in str(failure.value)


def test_a_periodic_schedule_fires_when_the_clock_reaches_it(
    dothis_queue: Queue, dothis_clock: Any
) -> None:
    schedules = Registry()
    dothis.periodic(60, queue=dothis_queue.name, registry=schedules)(f)
    assert run_queued(dothis_queue, schedules) == []  # a new schedule is armed, not fired
    dothis_clock.advance(60)
    [ran] = run_queued(dothis_queue, schedules)
    assert (ran.function, ran.value) == ("f", "ran")
    assert run_queued(dothis_queue, schedules) == []  # once per occurrence


def test_dothis_env_points_application_code_at_the_kit(dothis_env: str) -> None:
    task = shout.delay("hello")  # the application's own call: queue "dothis", no URL
    with Queue("dothis") as queue:
        assert queue.url == dothis_env
        assert_enqueued(queue, shout, text="hello")
        [ran] = run_queued(queue)  # the default registry, where @dothis.task put shout
    assert ran.id == task.id and ran.value == "HELLO"


def test_dothis_eager_runs_delay_at_once(dothis_eager: str) -> None:
    task = shout.delay("now")
    assert task.state == "finished" and task.result == "NOW"


def test_eager_mode_is_off_again_after_that_test(dothis_env: str) -> None:
    task = shout.delay("later")
    assert task.state == "pending"
