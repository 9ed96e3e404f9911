"""Scenario 2: SIGKILL redis-server mid-run and restart it on the same port and directory.

With the append-only file on and fsynced at every write (``appendonly yes``, ``appendfsync
always``), no acknowledged enqueue may be lost: the workers reconnect and finish every task. With
no AOF (``appendonly no``, ``save ""``) an acknowledged task IS lost, which is why Redis must run
with the AOF on; the second test keeps that warning true.
"""

from __future__ import annotations

import time

import pytest

from chaos.checker import Row
from chaos.harness import Producer, Watch, recovery_bound, size, wait_all_finished
from dothis import Queue

pytestmark = pytest.mark.chaos

TIMING = ("--lease-ms", "1000", "--heartbeat-ms", "250", "--reap-ms", "250",
          "--max-claims", "20", "--concurrency", "2")  # fmt: skip


def test_sigkill_redis_with_aof_loses_nothing(servers, queue_name, history, fleets, table):
    server = servers(aof=True)
    client = server.client()
    tasks, window = size(300, 1500), size(4.0, 10.0)
    crashes = size(1, 3)
    began = time.monotonic()
    down = 0.0
    fleet = fleets(server.url, queue_name, *TIMING, log=history.log).start(2)
    fleet.wait_registered(client, timeout=30)
    watch = Watch(server.port, queue_name, history, fleet.alive).start()
    producer = Producer(server.url, queue_name, history, tasks, window, retry_for=30).start()
    for crash in range(crashes):
        # spread the crashes over the window (the fault schedule, not a wait for an event)
        due = producer.began + window * (crash + 0.5) / crashes
        time.sleep(max(0.0, due - time.monotonic()))
        acknowledged_before = len(history.acknowledged)
        down_at = time.monotonic()
        server.kill()
        time.sleep(0.5)  # Redis stays down for half a second
        server.restart()
        down = max(down, time.monotonic() - down_at)
        client = server.client()
        fleet.check_alive()
        assert acknowledged_before > 0
    producer.join()
    wait_all_finished(history, client, queue_name, timeout=size(60, 180), fleet=fleet)
    stuck_bound = recovery_bound(1000, 250, run=0.02, fault=down)
    verdict = history.check(client, queue_name, spans=watch.stop(), bound=stuck_bound)
    leftovers = client.llen(f"{queue_name}:executing") + client.llen(f"{queue_name}:pending")
    ok = verdict.ok and not leftovers
    row = table(Row.from_verdict("2 redis SIGKILL, AOF", f"{crashes} redis kill(s)", verdict,
                                 None, time.monotonic() - began))  # fmt: skip
    row.verdict = "pass" if ok else "FAIL"
    row.notes.append(f"{verdict.summary()}; enqueue errors retried: {history.enqueue_errors}")
    assert not verdict.lost, verdict.summary()
    assert not verdict.unexpected, verdict.summary()
    assert not verdict.stuck, verdict.summary()
    assert not producer.unacknowledged, producer.unacknowledged[:5]
    assert not leftovers
    fleet.stop_cleanly()
    client.close()


def test_sigkill_redis_without_aof_loses_acknowledged_tasks(servers, queue_name, table):
    """The warning: without the AOF, Redis acknowledges writes it then loses on a crash."""
    began = time.monotonic()
    server = servers(aof=False)
    with Queue(queue_name, server.url) as queue:
        task = queue.enqueue("echo", text="acknowledged")  # returned: acknowledged
        assert queue.read_task(task.id) is not None
    server.kill()
    server.restart()
    client = server.client()
    lost = not client.exists(f"{queue_name}:task:{task.id}")
    note = "appendonly no, save '': the acknowledged task is gone after the restart"
    verdict = "pass (lost, as warned)" if lost else "FAIL"
    seconds = time.monotonic() - began
    table(Row("2 redis SIGKILL, no AOF", "1 redis kill", 1, int(lost), 0, "-", seconds, verdict,
              [note]))  # fmt: skip
    assert lost, "the task survived without AOF: the warning in the docs would be wrong"
    assert client.llen(f"{queue_name}:pending") == 0
    client.close()
