"""Scenario 11: an ``async def`` task that blocks the worker's event loop for several leases.

``block_loop`` calls ``time.sleep`` on the event loop, so nothing else of its worker runs on the
loop meanwhile: no claim, no reaper pass, no outcome. The worker keeps its leases (its worker key
and the task's ``lease-expires``) from the heartbeat thread (SPEC.md 5.6: a schedule a running
function cannot delay), so a second worker's reaper must not recover the task. Required: it runs
exactly once (``claims`` 1), succeeds, and the other tasks queued meanwhile finish.
"""

from __future__ import annotations

import time

import pytest

from chaos.harness import (
    Watch,
    judge,
    log_lines,
    poll,
    recovery_bound,
    settle,
    size,
    stop_at_full_size,
)
from dothis import Queue

pytestmark = pytest.mark.chaos

LEASE_MS, REAP_MS = 1000, 250
TIMING = ("--lease-ms", str(LEASE_MS), "--heartbeat-ms", "250", "--reap-ms", str(REAP_MS),
          "--concurrency", "2")  # fmt: skip
BLOCK = size(3.0, 8.0)


def test_blocking_async_task_runs_once(server, client, queue_name, history, fleets, table):
    began = time.monotonic()
    fleet = fleets(server.url, queue_name, *TIMING, log=history.log).start(2)
    fleet.wait_registered(client, timeout=30)
    watch = Watch(server.port, queue_name, history, fleet.alive).start()
    key = f"{queue_name}:task:block"
    with Queue(queue_name, server.url) as queue:
        assert history.enqueue(queue, "block", function="block_loop", args={"seconds": BLOCK})
        poll(lambda: client.hget(key, "state") == b"executing", timeout=10)
        for number in range(20):
            assert history.enqueue(queue, f"r{number:02d}", args={"seconds": 0.05})
    bound = recovery_bound(LEASE_MS, REAP_MS, run=BLOCK)
    missing = settle(history, client, queue_name, timeout=bound + 5, fleet=fleet)
    row, verdict = judge(table, "11 blocking async def", f"event loop blocked {BLOCK:g} s",
                         history, client, queue_name, spans=watch.stop(), bound=bound,
                         began=began, missing=missing, extra_bound=0)  # fmt: skip
    task = client.hgetall(key)
    logs = fleet.outputs()
    claims = task.get(b"claims", b"?").decode()
    row.notes.append(
        f"block: claims={claims} losses={task.get(b'losses', b'0').decode()} "
        f"result={task.get(b'result', b'-').decode()} executions="
        f"{history.executions()['block']}; 'event loop has not run' warnings "
        f"{len(log_lines(logs, 'event loop has not run'))}; recovered "
        f"{len(log_lines(logs, 'recovered task block'))}"
    )
    if claims != "1" or verdict.extra:
        row.verdict = "FAIL"
    fleet.check_alive()
    assert not missing and verdict.ok, row.notes
    assert task.get(b"result") == b"successful", task
    assert claims == "1" and history.executions()["block"] == 1, row.notes[-1]
    assert not verdict.extra, verdict.summary()
    stop_at_full_size(fleet)
