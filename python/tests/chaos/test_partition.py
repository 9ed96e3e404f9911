"""Scenario 10: a network partition between one worker and Redis, with late bytes.

One worker talks to Redis through a loopback TCP proxy (``harness.Proxy``), another directly.
While tasks flow, the proxy

- **late**: holds every byte both ways for several leases, then delivers them, in order, late:
  the partitioned worker's heartbeats, renewals, claims and outcomes all arrive after its lease
  and its tasks' leases ran out and the other worker recovered them (at full size, longer than
  the clients' 10 s socket timeout, so some bytes arrive from clients that gave up);
- **blackhole**: discards every byte both ways for several leases, then drops (aborts) every
  connection; the worker reconnects through the proxy.

Required: nothing lost, nothing stuck in executing beyond the bound (SPEC.md 9.3), no task fails,
no worker exits; the late outcomes are fenced (SPEC.md 5.4); duplicates are counted.
"""

from __future__ import annotations

import time

import pytest

from chaos.harness import (
    Producer,
    Watch,
    judge,
    log_lines,
    recovery_bound,
    settle,
    size,
    stop_at_full_size,
)

pytestmark = pytest.mark.chaos

LEASE_MS, REAP_MS = 1000, 250
CONCURRENCY = 4
TIMING = ("--lease-ms", str(LEASE_MS), "--heartbeat-ms", "250", "--reap-ms", str(REAP_MS),
          "--max-claims", "20", "--concurrency", str(CONCURRENCY))  # fmt: skip
RUN = (0.0, 0.05, 0.2, 0.5)
PARTITION = size(2.5, 12.0)


@pytest.mark.parametrize("mode", ["late", "blackhole"])
def test_partition_with_late_bytes(servers, proxies, queue_name, history, fleets, table, mode):
    began = time.monotonic()
    server = servers()
    client = server.client()
    proxy = proxies(server.port)
    tasks, window = size(120, 800), size(2.5, 8.0)
    far = fleets(proxy.url, queue_name, *TIMING, log=history.log, name="far").start(1)
    near = fleets(server.url, queue_name, *TIMING, log=history.log, name="near").start(1)
    far.wait_registered(client, timeout=30)
    near.wait_registered(client, timeout=30)
    watch = Watch(server.port, queue_name, history, lambda: far.alive() or near.alive()).start()
    producer = Producer(server.url, queue_name, history, tasks, window, prefix=mode[0],
                        seconds=RUN).start()  # fmt: skip
    time.sleep(max(0.0, producer.began + window / 3 - time.monotonic()))  # the fault schedule
    cut_at = time.monotonic()
    if mode == "late":
        proxy.hold()
        time.sleep(PARTITION)  # the fault's own duration
        proxy.release()
        described = f"held {PARTITION:.0f} s, {proxy.held} B late"
    else:
        proxy.blackhole()
        time.sleep(PARTITION)
        dropped = proxy.drop()
        described = f"black hole {PARTITION:.0f} s, {proxy.discarded} B, {dropped} conns dropped"
    lasted = time.monotonic() - cut_at
    producer.join()
    missing = settle(history, client, queue_name, timeout=size(60, 120), fleet=near)
    bound = recovery_bound(LEASE_MS, REAP_MS, run=max(RUN), fault=lasted)
    row, verdict = judge(table, f"10 partition, {mode}", described, history, client, queue_name,
                         spans=watch.stop(), bound=bound, began=began,
                         missing=missing)  # fmt: skip
    far_log = far.outputs()
    row.notes.append(
        f"far worker: outcomes discarded (fenced) {len(log_lines(far_log, 'discarded'))}, "
        f"worker key expired {len(log_lines(far_log, 'worker key'))}, lost Redis "
        f"{len(log_lines(far_log, 'lost Redis'))}, tracebacks "
        f"{len(log_lines(far_log, 'Traceback'))}, 'event loop has not run' warnings (the loop "
        f"was not blocked: the heartbeat thread waited on Redis) "
        f"{len(log_lines(far_log, 'event loop has not run'))}; near worker recovered "
        f"{len(log_lines(near.outputs(), 'recovered task'))} task(s); proxy connections "
        f"{proxy.connections}"
    )
    far.check_alive()
    near.check_alive()
    assert not missing, row.notes[-2]
    assert verdict.ok, verdict.summary()
    assert not verdict.failed, verdict.failed
    assert client.llen(f"{queue_name}:executing") == 0
    stop_at_full_size(near, far)
    client.close()
