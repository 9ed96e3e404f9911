"""The worker as it starts with no options, on a backlog: it claims and starts with take.lua, a
batch per call, and runs every task once (SPEC.md 5.18)."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from support import wait_until

import dothis.examples  # noqa: F401  (registers add)
from dothis import Call

pytestmark = pytest.mark.integration


def calls(r: redis.Redis, command: str) -> int:
    stats = r.info("commandstats").get(f"cmdstat_{command}")
    return int(stats["calls"]) if stats else 0


def test_a_backlog_is_taken_in_batches(queue: Any, r: redis.Redis, start_worker: Any) -> None:
    tasks = queue.enqueue_many([Call("add", {"a": n, "b": 1}) for n in range(300)])
    r.config_resetstat()
    start_worker()  # the defaults: process pool, concurrency 1, prefetch auto
    wait_until(lambda: all(task.state == "finished" for task in tasks[-5:]), timeout=60)
    wait_until(lambda: r.llen(queue.keys.executing) == 0, timeout=30)
    assert [task.wait(timeout=10) for task in tasks] == [n + 1 for n in range(300)]
    # a finish per task, and a take per batch: a start and a finish each would be 600 (LMOVE and
    # start.lua's commands count the same either way: inside a script they are counted too)
    assert 300 < calls(r, "evalsha") < 400
