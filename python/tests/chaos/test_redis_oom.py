"""Scenario 7: Redis out of memory (``maxmemory`` reached under ``noeviction``) while tasks finish.

The server's memory is filled past a low ``maxmemory`` with one big key, for less than a lease and
for several leases, then the key is deleted and the limit lifted. Meanwhile every write that needs
memory is refused with ``OOM``: claims, starts, outcomes, heartbeats, task-lease renewals and
enqueues (the producer retries them with the same id). Required: nothing lost, nothing stuck in
executing beyond the bound once memory is back (SPEC.md 9.3), no worker exits, no task fails;
duplicates are counted (a task whose lease ran out during the fault runs again, SPEC.md 4.3).
A few long tasks run across the whole fault, so that their renewals are refused with it.
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
LONG = 4  # tasks that run across the whole fault, so their lease renewals are refused


@pytest.mark.parametrize(
    "seconds", [0.5, size(2.5, 8.0)], ids=["shorter-than-lease", "longer-than-lease"]
)
def test_redis_out_of_memory(servers, queue_name, history, fleets, table, seconds):
    began = time.monotonic()
    server = servers()  # its own: the memory settings must not reach other scenarios
    client = server.client()
    tasks, window = size(120, 800), size(2.5, 8.0)
    fleet = fleets(server.url, queue_name, *TIMING, log=history.log).start(2)
    fleet.wait_registered(client, timeout=30)
    watch = Watch(server.port, queue_name, history, fleet.alive).start()
    producer = Producer(server.url, queue_name, history, tasks, window, prefix="m",
                        seconds=RUN, retry_for=30).start()  # fmt: skip
    time.sleep(max(0.0, producer.began + window / 3 - time.monotonic()))  # the fault schedule
    with Queue(queue_name, server.url) as queue:
        for number in range(LONG):
            assert history.enqueue(queue, f"L{number}", args={"seconds": seconds + 0.5})
    poll(lambda: all(client.hget(f"{queue_name}:task:L{number}", "state") == b"executing"
                     for number in range(LONG)), timeout=10)  # fmt: skip
    admin = server.client()
    server.out_of_memory(admin)
    refused_at = time.monotonic()
    time.sleep(seconds)  # the fault's own duration
    server.memory_back(admin)
    lasted = time.monotonic() - refused_at
    admin.close()
    producer.join()
    missing = settle(history, client, queue_name, timeout=size(60, 120), fleet=fleet)
    bound = recovery_bound(LEASE_MS, REAP_MS, run=seconds + 0.5, fault=lasted)
    row, verdict = judge(table, f"7 redis OOM {seconds:g} s", f"maxmemory, {lasted:.1f} s of OOM",
                         history, client, queue_name, spans=watch.stop(), bound=bound,
                         began=began, missing=missing)  # fmt: skip
    logs = fleet.outputs()
    row.notes.append(
        f"enqueues refused and retried: {history.enqueue_errors}; worker log lines naming the "
        f"fault: {len(log_lines(logs, 'out of memory', 'maxmemory'))}, of them explained ('out "
        f"of memory'): {len(log_lines(logs, 'out of memory'))}; tracebacks: "
        f"{len(log_lines(logs, 'Traceback'))}; tasks recovered: "
        f"{len(log_lines(logs, 'recovered task'))}; keys expired: "
        f"{len(log_lines(logs, 'had expired'))}"
    )
    fleet.check_alive()
    assert not missing, row.notes[-2]
    assert verdict.ok, verdict.summary()
    assert not verdict.failed, verdict.failed
    assert client.llen(f"{queue_name}:executing") == 0
    stop_at_full_size(fleet)
    client.close()
