"""Scenario 14: failover to a replica, and a worker pointed at a replica.

- **failover**: a primary and its replica; workers and producer reach Redis through a proxy (the
  stable address a DNS name or virtual IP gives in production) in front of the primary. While
  tasks flow, ``FAILOVER`` on the primary hands the role to the replica (writes paused until the
  replica has caught up, so nothing acknowledged is lost) and turns the old primary into a
  replica: the workers, still connected to it, now get ``READONLY`` for every write. After a few
  leases the proxy is pointed at the new primary and its connections dropped.
- **replica from the start**: a worker whose URL names a replica; tasks wait on the primary.

Required: a worker says what is wrong in one clear log line (not a traceback per retry), fails
no task (least of all as bad input), does not exit on a ``READONLY`` met while serving, and once
it reaches a primary every task finishes: nothing lost or stuck.
"""

from __future__ import annotations

import contextlib
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
READONLY_SECONDS = size(2.0, 6.0)
REPLICA_MARKS = ("replica", "READONLY", "read only", "read-only")


def replica_of(servers, primary):
    replica = servers(extra=("--replicaof", "127.0.0.1", str(primary.port)))
    # the first sync at once, not after the default 5 s of repl-diskless-sync-delay
    admin = primary.client()
    admin.config_set("repl-diskless-sync-delay", 0)
    admin.close()
    client = replica.client()
    poll(lambda: client.info("replication").get("master_link_status") == "up", timeout=20)
    client.close()
    return replica


def role(server) -> str:
    client = server.client()
    try:
        return str(client.info("replication")["role"])
    finally:
        client.close()


def test_failover_with_workers_left_on_the_old_primary(
    servers, proxies, queue_name, history, fleets, table
):
    began = time.monotonic()
    primary = servers()
    replica = replica_of(servers, primary)
    proxy = proxies(primary.port)
    client = primary.client()
    tasks, window = size(80, 800), size(2.0, 8.0)
    fleet = fleets(proxy.url, queue_name, *TIMING, log=history.log).start(2)
    fleet.wait_registered(client, timeout=30)
    watch = Watch(primary.port, queue_name, history, fleet.alive).start()
    producer = Producer(proxy.url, queue_name, history, tasks, window, prefix="f", seconds=RUN,
                        retry_for=60).start()  # fmt: skip
    time.sleep(max(0.0, producer.began + window / 3 - time.monotonic()))  # the fault schedule
    failover_at = time.monotonic()
    client.execute_command("FAILOVER", "TIMEOUT", 5000)
    poll(lambda: role(primary) == "slave" and role(replica) == "master", timeout=15)
    time.sleep(READONLY_SECONDS)  # the workers talk to a replica meanwhile
    proxy.retarget(replica.port)
    dropped = proxy.drop()
    watch.follow(replica.port)
    switched = time.monotonic() - failover_at
    client.close()
    client = replica.client()
    producer.join(timeout=120)
    missing = settle(history, client, queue_name, timeout=size(60, 120), fleet=fleet)
    bound = recovery_bound(LEASE_MS, REAP_MS, run=max(RUN), fault=switched)
    row, verdict = judge(table, "14 failover, workers on old primary",
                         f"FAILOVER, {READONLY_SECONDS:g} s READONLY, {dropped} conns moved",
                         history, client, queue_name, spans=watch.stop(), bound=bound,
                         began=began, missing=missing)  # fmt: skip
    per_worker = [log_lines(process.output(), *REPLICA_MARKS) for process in fleet.slots]
    tracebacks = len(log_lines(fleet.outputs(), "Traceback"))
    row.notes.append(
        f"lines naming the replica per worker: {[len(lines) for lines in per_worker]}, e.g. "
        f"{[lines[0][24:220] for lines in per_worker if lines][:1]}; tracebacks: {tracebacks}; "
        f"failed: {verdict.failed}; enqueues refused and retried: {history.enqueue_errors}"
    )
    clear = all(0 < len(lines) <= 3 for lines in per_worker) and tracebacks == 0
    if not clear:
        row.verdict = "FAIL"
    fleet.check_alive()
    assert not missing and verdict.ok, row.notes
    assert not verdict.failed, verdict.failed
    assert clear, row.notes[-1]
    stop_at_full_size(fleet)
    client.close()


def test_worker_pointed_at_a_replica(servers, queue_name, history, fleets, table):
    began = time.monotonic()
    primary = servers()
    replica = replica_of(servers, primary)
    client = primary.client()
    tokens = [f"p{number}" for number in range(5)]
    with Queue(queue_name, primary.url) as queue:
        for token in tokens:
            assert history.enqueue(queue, token)
    on_replica = fleets(replica.url, queue_name, *TIMING, log=history.log, name="onreplica")
    on_replica.start(1)
    worker = on_replica.slots[0]
    watch = Watch(primary.port, queue_name, history, on_replica.alive).start()
    with contextlib.suppress(AssertionError):  # reported below: no line about the replica
        poll(lambda: (log_lines(worker.output(), *REPLICA_MARKS)
                      or worker.process.poll() is not None), timeout=15)  # fmt: skip
    time.sleep(1.0)  # let it go on for a while: does it repeat itself, fail tasks, exit?
    code = worker.process.poll()
    lines = log_lines(worker.output(), *REPLICA_MARKS)
    tracebacks = len(log_lines(worker.output(), "Traceback"))
    states = {token: client.hget(f"{queue_name}:task:{token}", "state") for token in tokens}
    touched = [token for token, state in states.items() if state != b"pending"]
    # then a worker on the primary runs them all
    drain = fleets(primary.url, queue_name, *TIMING, log=history.log, name="drain").start(1)
    missing = settle(history, client, queue_name, timeout=30, fleet=drain)
    bound = recovery_bound(LEASE_MS, REAP_MS)
    row, verdict = judge(table, "14 worker pointed at a replica", "URL names a replica",
                         history, client, queue_name, spans=watch.stop(), bound=bound,
                         began=began, missing=missing)  # fmt: skip
    row.notes.append(
        f"worker on the replica: {'exited ' + str(code) if code is not None else 'still running'}"
        f" after {time.monotonic() - began:.0f} s; lines naming the replica: {len(lines)}, first: "
        f"{lines[0][24:260] if lines else None}; tracebacks: {tracebacks}; tasks it touched: "
        f"{touched}"
    )
    clear = bool(lines) and len(lines) <= 3 and tracebacks == 0 and not touched
    if not clear:
        row.verdict = "FAIL"
    assert not missing and verdict.ok, row.notes
    assert not verdict.failed and not touched, (verdict.failed, states)
    assert clear, row.notes[-1]
    stop_at_full_size(drain)
    client.close()
