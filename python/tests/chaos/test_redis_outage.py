"""Scenario 9: a long Redis outage (several leases) while tasks run and finish.

Two ways: redis-server SIGSTOPped (connections stay open, every call hangs; at full size longer
than the clients' 10 s socket timeout) and redis-server SIGKILLed and restarted on its port and
directory after the same time, with ``appendonly yes`` and ``appendfsync always``. A few long
tasks run across the whole outage; a producer keeps enqueueing (retrying with the same id).
Required: nothing lost, nothing stuck in executing beyond the bound once Redis is back (SPEC.md
9.3), no worker exits, no task fails; duplicates (leases that ran out during the outage) are
counted.
"""

from __future__ import annotations

import time

import pytest

from chaos.harness import (
    Producer,
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
          "--max-claims", "20", "--concurrency", "4")  # fmt: skip
RUN = (0.0, 0.05, 0.2)
LONG = 4
OUTAGE = size(3.0, 12.0)


@pytest.mark.parametrize("fault", ["sigstop", "aof-restart"])
def test_long_redis_outage(servers, queue_name, history, fleets, table, fault):
    began = time.monotonic()
    server = servers(aof=fault == "aof-restart")
    client = server.client()
    tasks, window = size(120, 800), size(2.5, 8.0)
    fleet = fleets(server.url, queue_name, *TIMING, log=history.log).start(2)
    fleet.wait_registered(client, timeout=30)
    watch = Watch(server.port, queue_name, history, fleet.alive).start()
    producer = Producer(server.url, queue_name, history, tasks, window, prefix=fault[0],
                        seconds=RUN, retry_for=60).start()  # fmt: skip
    time.sleep(max(0.0, producer.began + window / 3 - time.monotonic()))  # the fault schedule
    with Queue(queue_name, server.url) as queue:
        for number in range(LONG):
            assert history.enqueue(queue, f"L{number}", args={"seconds": OUTAGE / 2})
    poll(lambda: all(client.hget(f"{queue_name}:task:L{number}", "state") == b"executing"
                     for number in range(LONG)), timeout=10)  # fmt: skip
    down_at = time.monotonic()
    if fault == "sigstop":
        server.freeze()
        time.sleep(OUTAGE)  # the fault's own duration
        server.thaw()
    else:
        server.kill()
        time.sleep(OUTAGE)
        server.restart()
        client.close()
        client = server.client()
    lasted = time.monotonic() - down_at
    producer.join(timeout=180)
    missing = settle(history, client, queue_name, timeout=size(60, 120), fleet=fleet)
    bound = recovery_bound(LEASE_MS, REAP_MS, run=OUTAGE / 2, fault=lasted)
    faults = f"{'SIGSTOP' if fault == 'sigstop' else 'SIGKILL, AOF, restart'} {lasted:.1f} s"
    spans = watch.stop()
    row, verdict = judge(table, f"9 redis outage, {fault}", faults, history, client, queue_name,
                         spans=spans, bound=bound, began=began,
                         missing=missing)  # fmt: skip
    logs = fleet.outputs()
    row.notes.append(
        f"enqueue errors retried: {history.enqueue_errors}; worker log lines: lost Redis "
        f"{len(log_lines(logs, 'lost Redis'))}, tracebacks {len(log_lines(logs, 'Traceback'))}, "
        f"tasks recovered {len(log_lines(logs, 'recovered task'))}, outcomes discarded "
        f"{len(log_lines(logs, 'discarded'))}"
    )
    fleet.check_alive()
    assert not missing, row.notes[-2]
    assert verdict.ok, verdict.summary()
    assert not verdict.failed, verdict.failed
    assert not producer.unacknowledged, producer.unacknowledged[:5]
    assert client.llen(f"{queue_name}:executing") == 0
    stop_at_full_size(fleet)
    client.close()
