"""The testing kit: test the tasks of an application that uses dothis, with pytest.

Installing dothis installs a pytest plugin (``dothis.testing.plugin``); nothing to configure. It
stays inert until a test asks for one of its fixtures, and needs the ``redis-server`` binary on
PATH (``apt-get install redis-server``, ``brew install redis``): one real, throwaway server per
test session, on a free loopback port, no persistence. No fakeredis: the Lua scripts run for real.

    import dothis
    from dothis.testing import assert_enqueued

    registry = dothis.Registry()

    @dothis.task(registry=registry)
    def add(a: int, b: int) -> int:
        return a + b

    def test_add_runs(dothis_queue, dothis_worker):
        dothis_queue.enqueue(add, a=2, b=3)
        assert_enqueued(dothis_queue, add, a=2)          # queued, not run yet
        [ran] = dothis_worker.run(registry)              # run what is queued, here and now
        assert ran.outcome == "successful" and ran.value == 5

    def test_a_delayed_task_runs_once_it_is_due(dothis_queue, dothis_worker, dothis_clock):
        dothis_queue.enqueue(add, a=1, b=1, delay=3600)
        assert dothis_worker.run(registry) == []         # not due yet
        dothis_clock.advance(3600)
        assert [r.value for r in dothis_worker.run(registry)] == [2]

Fixtures (all named ``dothis_*``):

``dothis_redis_url``
    (session) the URL of the kit's redis-server, started on first use, stopped at the end.
``dothis_queue``
    a ``dothis.Queue`` of a fresh name on that server; closed and its keys deleted after the test.
``dothis_worker``
    runs what ``dothis_queue`` holds now: ``dothis_worker.run(registry=None, *, schedules=True,
    check=False)`` returns a list of ``Ran``; set ``dothis_worker.registry`` once instead of
    passing it. The same as ``run_queued(dothis_queue, registry)``.
``dothis_clock``
    a ``Clock``: ``dothis_clock.advance(seconds)`` (or a timedelta) moves the protocol clock
    forward, so delayed tasks and retries are due and periodic and cron schedules reach their next
    occurrence; put back after the test. It moves this process's clock only (not a worker's in
    another process).
``dothis_env``
    sets ``$DOTHIS_REDIS_URL`` to the kit's server for the test, so application code that queues
    without a URL (``send_mail.delay(...)``, ``Queue("mail")``) writes there; the server's database
    is emptied after the test. Read what it queued with ``enqueued(Queue("mail"))``.
``dothis_eager``
    eager mode for one test (``set_always_eager(True)`` and ``dothis_env``): each ``@task``
    function's ``.delay()`` runs at once, in the test's process; the previous mode after.

``pytest --dothis-eager`` (or ``dothis_eager = true`` in the ``[pytest]`` ini section) does the
same for the whole session. Eager mode applies to ``.delay()`` / ``.enqueue()`` of ``@task``
functions; a ``Queue`` you create yourself is eager only with ``Queue(..., is_async=False)``.

Helpers:

``run_queued(queue, registry=None, *, schedules=True, check=False, limit=1000) -> list[Ran]``
    a burst, in this process, with the worker's own engine (start.lua, the checks, the try, the
    decision, finish.lua, callbacks and dependents): runs every pending task, the scheduled ones
    already due, and what those queue, until nothing is pending. A failed try with attempts left
    is scheduled for its retry (``Ran.retried``): advance the clock and run again. The registry's
    periodic and cron schedules of this queue fire as a worker's do: the first burst arms a new
    schedule, which fires at its next occurrence. ``check=True`` raises AssertionError with the
    tracebacks when a task did not succeed. Plain functions run in the test's thread (patches and
    mocks apply); timeouts are not enforced.
``Ran``
    ``id``, ``function``, ``outcome`` (``successful``, ``failed``, ``cancelled``, ``expired``;
    None while a retry is scheduled), ``value`` (what the function returned), ``error_code``,
    ``error_reason``, ``exception`` (the traceback), ``state``, ``succeeded``, ``retried``, and
    ``info``, the ``TaskInfo`` of the whole hash.
``enqueued(queue, function=None) -> list[TaskInfo]``
    what the queue holds that has not started: pending (next first), scheduled (soonest first),
    waiting for other tasks; only calls of ``function`` (a name or a ``@task`` function) if given.
``assert_enqueued(queue, function, **args) -> TaskInfo``
    the first such task calling ``function`` with those arguments (others are not compared); the
    AssertionError lists what the queue holds.
``Clock``, ``always_eager()``, ``redis_url_env(url)``, ``RedisServer``
    the pieces behind the fixtures, as context managers, for other test runners.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dothis.testing.assertions import assert_enqueued, enqueued
    from dothis.testing.burst import Ran, Runner, run_queued
    from dothis.testing.clock import Clock
    from dothis.testing.env import always_eager, redis_url_env
    from dothis.testing.server import RedisServer

# Imported on first use: the plugin module lives in this package and is loaded by every pytest run.
_HOMES = {
    "assert_enqueued": "assertions",
    "enqueued": "assertions",
    "Ran": "burst",
    "Runner": "burst",
    "run_queued": "burst",
    "Clock": "clock",
    "always_eager": "env",
    "redis_url_env": "env",
    "RedisServer": "server",
}

__all__ = [
    "Clock",
    "Ran",
    "RedisServer",
    "Runner",
    "always_eager",
    "assert_enqueued",
    "enqueued",
    "redis_url_env",
    "run_queued",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'dothis.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"dothis.testing.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
