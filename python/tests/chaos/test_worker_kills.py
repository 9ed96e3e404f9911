"""Scenario 1: SIGKILL a random serving worker every ~0.4 s while tasks flow through three workers.

Every killed worker is replaced at once. Leases are short (1 s), so the reapers of the others
recover the killed worker's tasks within about 1.3 s. The checker then requires no lost and no
unexpected task, and at most ``concurrency`` extra executions per kill (a worker killed after a
function ran but before its outcome was written runs at most ``concurrency`` tasks at once).
"""

from __future__ import annotations

import random
import time

import pytest

from chaos.checker import Row
from chaos.harness import Producer, Watch, recovery_bound, size, wait_all_finished

pytestmark = pytest.mark.chaos

WORKERS = 3
CONCURRENCY = 2
TIMING = ("--lease-ms", "1000", "--heartbeat-ms", "250", "--reap-ms", "250",
          # max-claims is scenario 6's subject; here a task hit by several kills must not fail
          "--max-claims", "20")  # fmt: skip


def test_random_sigkill_of_workers(server, client, queue_name, history, fleets, table) -> None:
    tasks = size(600, 3000)
    window = size(4.0, 10.0)
    rng = random.Random(20240601)
    fleet = fleets(server.url, queue_name, *TIMING, "--concurrency", str(CONCURRENCY),
                   log=history.log).start(WORKERS)  # fmt: skip
    fleet.wait_registered(client, timeout=30)
    watch = Watch(server.port, queue_name, history, fleet.alive).start()
    producer = Producer(server.url, queue_name, history, tasks, window, prefix="k").start()
    began = producer.began
    kills_at: list[float] = []
    while time.monotonic() - began < window:
        time.sleep(rng.uniform(0.3, 0.5))  # the fault schedule itself, not a wait for an event
        fleet.check_alive()
        serving = [slot for slot, p in enumerate(fleet.slots)
                   if client.exists(f"{queue_name}:worker:{p.worker_id}")]  # fmt: skip
        if not serving:
            continue  # every worker is still starting: a kill now would test nothing
        slot = rng.choice(serving)
        fleet.kill(slot)
        fleet.refill(slot)
        kills_at.append(time.monotonic() - began)
    producer.join()
    wait_all_finished(history, client, queue_name, timeout=size(90, 240), fleet=fleet)
    # the kills go on for the whole window: a task may be hit by several
    stuck_bound = recovery_bound(1000, 250, run=0.02, fault=window)
    verdict = history.check(client, queue_name, spans=watch.stop(), bound=stuck_bound)
    bound = fleet.kills * CONCURRENCY
    leftovers = client.llen(f"{queue_name}:executing") + client.llen(f"{queue_name}:pending")
    ok = verdict.ok and verdict.extra <= bound and not leftovers
    row = table(Row.from_verdict("1 worker SIGKILL", f"{fleet.kills} kills / {window:.0f} s",
                                 verdict, bound, time.monotonic() - began))  # fmt: skip
    row.verdict = "pass" if ok else "FAIL"
    row.notes.append(verdict.summary())
    assert fleet.kills >= size(2, 5), f"too few kills happened: {kills_at}"
    assert not verdict.lost, verdict.summary()
    assert not verdict.unexpected, verdict.summary()
    assert not verdict.stuck, verdict.summary()
    assert verdict.extra <= bound, verdict.summary()
    assert not leftovers
    fleet.wait_registered(client, timeout=60)  # a SIGTERM during start-up would just kill
    fleet.stop_cleanly()
