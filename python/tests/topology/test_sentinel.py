"""Sentinel: producers and workers reach the primary through three sentinels, and a failover in
the middle of a drain costs seconds, not tasks (docs/topology.md).

The failover test kills the primary, so it runs last in this module; the session's sentinel set
is not used after it.
"""

from __future__ import annotations

import logging
import threading
import time

import pytest
import redis
from support import WorkerProcess, wait_until

from dothis import Queue
from dothis.errors import DothisError
from dothis.store.connection import preflight
from topology.servers import SentinelSet, elapsed, plain

pytestmark = pytest.mark.integration

TASKS = 120


def test_round_trip_and_replication_warning(
    sentinel_set: SentinelSet, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        preflight(sentinel_set.url, [name], logging.getLogger("dothis.test"))
    assert "min-replicas-to-write 0" in caplog.text
    worker = WorkerProcess(sentinel_set.url, name)
    try:
        with Queue(name, sentinel_set.url) as queue:
            assert queue.enqueue("add", a=2, b=3).wait(timeout=15) == 5
    finally:
        worker.stop()
    assert "min-replicas-to-write 0" in worker.output()


class Producer(threading.Thread):
    """Enqueues ``count`` tasks one by one, each retried until Redis takes it; a task counts as
    acknowledged when enqueue returned and WAIT saw it on a replica (or no replica is left)."""

    def __init__(self, url: str, name: str, ids: list[str]) -> None:
        super().__init__(daemon=True)
        self.queue, self.ids = Queue(name, url), ids
        self.acknowledged: list[str] = []
        self.unconfirmed: list[str] = []
        self.retries = 0

    def run(self) -> None:
        deadline = time.monotonic() + 30
        for task_id in self.ids:
            while time.monotonic() < deadline:
                try:
                    self.queue.enqueue("sleep", task_id=task_id, seconds=0.02)
                    known = self.queue.redis.info("replication").get("connected_slaves", 0)
                    replicas = int(self.queue.redis.execute_command("WAIT", 1, 200)) if known else 0
                    target = self.acknowledged if replicas or not known else self.unconfirmed
                    target.append(task_id)
                    break
                except (DothisError, redis.RedisError) as error:
                    if "exists" in str(error):
                        self.acknowledged.append(task_id)  # the first try got through
                        break
                    self.retries += 1
                    time.sleep(0.05)
        self.queue.close()


def _succeeded(url: str, name: str) -> int | None:
    try:
        with Queue(name, url) as queue:
            return int(queue.redis.zcard(f"{name}:succeeded"))
    except (DothisError, redis.RedisError):
        return None


def test_failover_in_the_middle_of_a_drain(sentinel_set: SentinelSet, name: str) -> None:
    url = sentinel_set.url
    old = sentinel_set.primary_port()
    first = plain(old)
    first.config_set("min-replicas-to-write", 1)  # a write no replica took is refused
    first.close()
    before = Producer(url, name, [f"a-{i}" for i in range(TASKS)])
    before.run()
    assert len(before.acknowledged) == TASKS
    worker = WorkerProcess(url, name, "--concurrency", "2", "--lease-ms", "3000",
                           "--heartbeat-ms", "1000")  # fmt: skip
    try:
        wait_until(lambda: (_succeeded(url, name) or 0) >= TASKS // 3, timeout=20)
        killed_at = time.monotonic()
        next(p for p in sentinel_set.processes if p.port == old).kill()
        after = Producer(url, name, [f"b-{i}" for i in range(50)])
        after.start()
        stall, last, count = 0.0, time.monotonic(), 0
        total = TASKS + 50
        while count < total and time.monotonic() - killed_at < 40:
            seen = _succeeded(url, name)
            if seen is not None and seen > count:
                count, last = seen, time.monotonic()
            stall = max(stall, time.monotonic() - last)
            time.sleep(0.05)
        after.join(timeout=30)
        assert worker.process.poll() is None, "the worker exited"
        new = sentinel_set.primary_port()
        client = plain(new, decode_responses=True)
        done = set(client.zrange(f"{name}:succeeded", 0, -1))
        client.close()
    finally:
        worker.stop()
    acknowledged = before.acknowledged + after.acknowledged
    lost = [task_id for task_id in acknowledged if task_id not in done]
    print(f"\nfailover: primary {old} -> {new}; {stall:.2f} s without progress; "
          f"{len(lost)} of {len(acknowledged)} acknowledged tasks lost; producer retries "
          f"{after.retries}; drained {elapsed(killed_at)} s after the kill")  # fmt: skip
    print("\n".join(line for line in worker.output().splitlines() if "dothis.tasks" not in line))
    assert new != old
    assert not lost
    assert after.acknowledged, "the producer never reached the new primary"
    assert "Traceback" not in worker.output(), worker.output()
