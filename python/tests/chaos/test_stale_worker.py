"""Scenario 4: a worker frozen past its lease comes back; its late outcome is fenced off.

The stale worker (and its pool, if any) is SIGSTOPped while it runs a task. A second worker's
reaper recovers the task once the lease has expired and runs it to an outcome. Then the stale
worker is SIGCONTed: its finish must be refused (the hash keeps the second worker's outcome and
claims=2), it must log that it discarded its outcome, and it must go on serving.
"""

from __future__ import annotations

import signal
import time

import pytest

from chaos.checker import Row
from chaos.harness import poll, signal_tree
from dothis import Queue

pytestmark = pytest.mark.chaos

TIMING = ("--lease-ms", "1000", "--heartbeat-ms", "250", "--reap-ms", "250")


def test_revived_stale_worker_is_fenced(server, client, queue_name, history, fleets, table):
    began = time.monotonic()
    stale = fleets(server.url, queue_name, *TIMING, log=history.log, name="stale").start(1)
    stale.wait_registered(client)
    stale_worker = stale.slots[0]
    key = f"{queue_name}:task:slow"
    with Queue(queue_name, server.url) as queue:
        assert history.enqueue(queue, "slow", args={"seconds": 1.5})
        poll(lambda: client.hget(key, "worker") == stale_worker.worker_id.encode(), timeout=20)
        signal_tree(stale_worker.process.pid, signal.SIGSTOP)
        frozen_at = time.monotonic()
        try:
            rescuer = fleets(server.url, queue_name, *TIMING, log=history.log, name="rescuer")
            rescuer.start(1)
            rescuer_id = rescuer.slots[0].worker_id.encode()
            poll(lambda: client.hget(key, "result") is not None, timeout=40)
            recovered = client.hgetall(key)
        finally:
            signal_tree(stale_worker.process.pid, signal.SIGCONT)
        frozen = time.monotonic() - frozen_at
        assert recovered[b"worker"] == rescuer_id, recovered
        assert recovered[b"claims"] == b"2" and recovered[b"result"] == b"successful", recovered

        # The stale worker wakes up, finishes its copy of the task, and is fenced.
        poll(lambda: "discarded" in stale_worker.output(), timeout=30)
        after = client.hgetall(key)
        assert after == recovered, "the stale worker's outcome overwrote the recovered one"
        assert stale_worker.process.poll() is None, stale_worker.output()[-3000:]
        # It notices that its lease had expired and registers again ...
        poll(lambda: client.exists(f"{queue_name}:worker:{stale_worker.worker_id}"), timeout=10)
        # ... and keeps serving: with the rescuer gone, it runs the next task itself.
        rescuer.stop_cleanly()
        assert history.enqueue(queue, "next")
        poll(lambda: client.hget(f"{queue_name}:task:next", "result"), timeout=30)
        assert client.hget(f"{queue_name}:task:next", "worker") == stale_worker.worker_id.encode()

    verdict = history.check(client, queue_name)
    row = table(Row.from_verdict("4 stale worker fenced", f"SIGSTOP {frozen:.1f} s",
                                 verdict, 1, time.monotonic() - began))  # fmt: skip
    row.notes.append(verdict.summary())
    ok = not verdict.lost and not verdict.unexpected and verdict.extra <= 1
    row.verdict = "pass" if ok else "FAIL"
    assert ok, verdict.summary()
    assert verdict.duplicated == {"slow": 2}, verdict.summary()  # both copies ran to the end
    log = stale_worker.output()
    assert "had expired" in log and "slow" in log
    stale.stop_cleanly()
