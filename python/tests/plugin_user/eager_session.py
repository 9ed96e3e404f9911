"""Run with ``--dothis-eager`` (by tests/integration/test_testing_kit.py): every @task function's
.delay() runs at once, for the whole session, on the kit's own redis-server; no fixture asked."""

from __future__ import annotations

import os

import dothis


@dothis.task
def double(n: int) -> int:
    return 2 * n


def test_delay_runs_at_once() -> None:
    task = double.delay(21)
    assert task.state == "finished" and task.result == 42


def test_it_talks_to_the_kits_server_not_the_default() -> None:
    url = os.environ["DOTHIS_REDIS_URL"]
    assert url.startswith("redis://127.0.0.1:") and ":6379/" not in url
