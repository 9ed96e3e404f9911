"""The testing kit (dothis.testing): its plugin as a user meets it, in a pytest of its own over
tests/plugin_user (the project's conftest.py not loaded), and its helpers in this process."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import redis

import dothis.testing
from dothis import Queue, Registry, task
from dothis.testing import Clock, RedisServer, assert_enqueued, enqueued, run_queued
from dothis.wire import clock

pytestmark = pytest.mark.integration

USER = Path(__file__).resolve().parents[1] / "plugin_user"


def user_pytest(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """pytest as a user runs it, in tests/plugin_user: its own pytest.ini, and nothing above it
    (--confcutdir: the project's conftest.py is not loaded). The kit's plugin comes by its entry
    point; hypothesis's is left out (it takes seconds to import and has no part here)."""
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "PYTEST_ADDOPTS",
                                "DOTHIS_REDIS_URL")}  # fmt: skip
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
               "-p", "no:hypothesispytest", "-c", str(USER / "pytest.ini"),
               "--rootdir", str(USER), "--confcutdir", str(USER), *args]  # fmt: skip
    return subprocess.run(command, check=False, cwd=USER, capture_output=True, text=True,
                          timeout=120, env={**environment, **(env or {})})  # fmt: skip


def passed(result: subprocess.CompletedProcess[str]) -> int:
    assert result.returncode == 0, result.stdout + result.stderr
    found = re.search(r"(\d+) passed", result.stdout)
    assert found is not None, result.stdout
    assert not re.search(r"\d+ (failed|error|skipped)", result.stdout), result.stdout
    return int(found.group(1))


def test_a_users_task_tests_pass_with_the_plugins_fixtures_alone() -> None:
    assert passed(user_pytest(str(USER))) == 12


def test_the_guides_example_runs_as_written(tmp_path: Path) -> None:
    """The example at the top of dothis.testing's docstring (the user documentation)."""
    guide = dothis.testing.__doc__ or ""
    start = guide.index("    import dothis\n")
    example = textwrap.dedent(guide[start : guide.index("\nFixtures")])
    (tmp_path / "guide_check.py").write_text(example)
    assert passed(user_pytest(str(tmp_path / "guide_check.py"))) == 2


@pytest.mark.parametrize("switch", [["--dothis-eager"], ["-o", "dothis_eager=true"]])
def test_eager_mode_for_a_whole_session(switch: list[str]) -> None:
    assert passed(user_pytest(*switch, str(USER / "eager_session.py"))) == 2


def test_a_session_that_uses_no_fixture_loads_nothing_of_the_kit() -> None:
    assert passed(user_pytest(str(USER / "inert.py"))) == 1


def test_without_redis_server_the_message_names_the_fix() -> None:
    result = user_pytest(str(USER / "user_tasks_check.py"), "-k", "enqueue_then_run",
                         env={"PATH": "/nonexistent"})  # fmt: skip
    assert result.returncode == 1 and "1 error" in result.stdout, result.stdout
    assert "apt-get install redis-server" in result.stdout
    eager = user_pytest("--dothis-eager", str(USER / "inert.py"), env={"PATH": "/nonexistent"})
    assert eager.returncode == 4, eager.stdout + eager.stderr  # a usage error, before any test
    assert "apt-get install redis-server" in eager.stderr


def test_the_server_is_stopped_by_pid_and_its_directory_removed() -> None:
    server = RedisServer()
    assert redis.Redis.from_url(server.url).ping()
    server.stop()
    assert server.process.poll() is not None and not Path(server.dir).exists()


def test_the_clock_moves_forward_keeps_its_advance_and_is_put_back(url: str) -> None:
    before = clock.offset_ms()
    with Clock() as fast:
        fast.advance(3600)
        assert 3_599_000 < clock.offset_ms() - before < 3_601_000
        with Queue("clock-check", url) as queue:
            queue.enqueue("f")  # a Queue's first enqueue measures the offset to Redis anew
            queue.delete()
        assert 3_590_000 < clock.offset_ms() < 3_610_000
        with pytest.raises(ValueError):
            fast.advance(-1)
    assert abs(clock.offset_ms()) < 10_000


def test_an_async_task_runs_in_a_burst_called_from_an_event_loop(url: str, queue_name: str):
    registry = Registry()

    @task(registry=registry)
    async def slow_add(a: int, b: int) -> int:
        await asyncio.sleep(0.01)
        return a + b

    async def a_test() -> list[object]:
        with Queue(queue_name, url) as queue:
            queue.enqueue(slow_add, a=1, b=2)
            return [ran.value for ran in run_queued(queue, registry)]

    assert asyncio.run(a_test()) == [3]


def test_a_cancelled_tasks_callback_runs_in_the_next_burst(url: str, queue_name: str) -> None:
    registry = Registry()
    seen: list[str] = []

    @task(registry=registry)
    def on_cancel(id: str, outcome: str, value: object, error: object) -> None:
        seen.append(f"{id} {outcome}")

    with Queue(queue_name, url) as queue:
        doomed = queue.enqueue("never", on_failure=on_cancel)
        assert queue.cancel(doomed.id) == "cancelled"
        [ran] = run_queued(queue, registry)
        assert ran.function == "on_cancel" and seen == [f"{doomed.id} cancelled"]


def test_a_rejected_entry_is_reported(url: str, queue_name: str, r: redis.Redis) -> None:
    with Queue(queue_name, url) as queue:
        r.lpush(queue.keys.pending, "no-such-task")
        [ran] = run_queued(queue)
        assert (ran.id, ran.function, ran.outcome) == ("no-such-task", None, None)
        assert ran.error_code is not None and "rejected" in str(ran)
        with pytest.raises(AssertionError, match="did not succeed"):
            r.lpush(queue.keys.pending, "no-such-task")
            run_queued(queue, check=True)


def test_a_task_that_queues_itself_forever_stops_at_the_limit(url: str, queue_name: str) -> None:
    registry = Registry()
    with Queue(queue_name, url) as queue:

        @task(registry=registry)
        def again() -> None:
            queue.enqueue(again)

        queue.enqueue(again)
        with pytest.raises(AssertionError, match="ran 5 entries"):
            run_queued(queue, registry, limit=5)
        assert len(queue) == 1  # the next one was left queued, not claimed


def test_enqueued_sees_pending_scheduled_and_waiting(url: str, queue_name: str) -> None:
    with Queue(queue_name, url) as queue:
        parent = queue.enqueue("parent", delay=60)
        queue.enqueue("child", depends_on=parent)
        queue.enqueue("now", n=1)
        listed = [(info.function, info.state) for info in enqueued(queue)]
        assert listed == [("now", "pending"), ("parent", "scheduled"), ("child", "waiting")]
        assert assert_enqueued(queue, "now", n=1).function == "now"
