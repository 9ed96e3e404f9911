"""Scenario 13: SIGTERM to the worker's whole process group, as ``systemctl stop`` sends it.

The worker leads a process group of its own (``harness.GroupWorker``); its pool children are in
it. While three tasks run in the pool, SIGTERM goes to the group: the worker and every child get
it at once. SPEC.md 9.4: the worker stops claiming and lets running tasks finish within its grace
period. Required: the running tasks finish ``successful`` (none ``crashed``: a child must not die
of the signal), the worker exits 0 well within the grace period, the tasks still pending stay
pending for the next worker, and nothing is lost or stuck.
"""

from __future__ import annotations

import signal
import time

import pytest

from chaos.harness import GroupWorker, Watch, judge, log_lines, poll, recovery_bound, settle
from dothis import Queue

pytestmark = pytest.mark.chaos

LEASE_MS, REAP_MS = 1000, 250
GRACE = 10.0
RUN = 2.0
TIMING = ("--lease-ms", str(LEASE_MS), "--heartbeat-ms", "250", "--reap-ms", str(REAP_MS),
          "--concurrency", "3", "--grace-seconds", str(GRACE))  # fmt: skip


def test_group_sigterm_lets_running_tasks_finish(
    server, client, queue_name, history, fleets, table
):
    began = time.monotonic()
    fleet = fleets(server.url, queue_name, *TIMING, log=history.log, kind=GroupWorker).start(1)
    fleet.wait_registered(client, timeout=30)
    worker = fleet.slots[0]
    assert isinstance(worker, GroupWorker)
    pool = len([pid for pid in _group(worker.process.pid) if pid != worker.process.pid])
    watch = Watch(server.port, queue_name, history, fleet.alive).start()
    running = [f"run{number}" for number in range(3)]
    waiting = [f"wait{number}" for number in range(5)]
    with Queue(queue_name, server.url) as queue:
        for token in running:
            assert history.enqueue(queue, token, args={"seconds": RUN})
        poll(lambda: all(client.hget(f"{queue_name}:task:{token}", "state") == b"executing"
                         for token in running), timeout=10)  # fmt: skip
        for token in waiting:
            assert history.enqueue(queue, token)
    time.sleep(0.5)  # the functions are inside their sleep: the fault schedule
    signalled = time.monotonic()
    worker.signal_group(signal.SIGTERM)
    code = worker.wait(timeout=GRACE + 15)
    exited = time.monotonic() - signalled
    after_stop = {token: client.hget(f"{queue_name}:task:{token}", "state")
                  for token in running + waiting}  # fmt: skip
    pending = client.lrange(f"{queue_name}:pending", 0, -1)
    drain = fleets(server.url, queue_name, *TIMING, log=history.log, name="drain").start(1)
    missing = settle(history, client, queue_name, timeout=30, fleet=drain)
    bound = recovery_bound(LEASE_MS, REAP_MS, run=RUN)
    row, verdict = judge(table, "13 group SIGTERM", f"SIGTERM to 1 + {pool} processes",
                         history, client, queue_name, spans=watch.stop(), bound=bound,
                         began=began, missing=missing)  # fmt: skip
    log = worker.output()
    crashed = [token for token, error in verdict.failed.items() if error == "crashed"]
    finished_running = [token for token in running if after_stop[token] == b"finished"]
    row.notes.append(
        f"worker exit {code} after {exited:.1f} s (grace {GRACE:g} s); running tasks finished "
        f"before it exited: {len(finished_running)} of {len(running)}; waiting tasks left "
        f"pending: {sum(token.encode() in pending for token in waiting)} of {len(waiting)}; "
        f"crashed: {crashed}; log: {log_lines(log, 'SIGTERM')[:1]}"
    )
    ok = (code == 0 and exited < GRACE and finished_running == running and not crashed
          and all(token.encode() in pending for token in waiting))  # fmt: skip
    if not ok:
        row.verdict = "FAIL"
    assert not missing and verdict.ok, row.notes
    assert not crashed, row.notes[-1]
    assert finished_running == running, row.notes[-1]
    assert code == 0 and exited < GRACE, row.notes[-1]
    assert all(token.encode() in pending for token in waiting), (after_stop, pending)
    drain.stop_cleanly()


def _group(pgid: int) -> list[int]:
    """The pids of a process group, from /proc."""
    from pathlib import Path

    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:  # field 5 of stat: the process group
                found.append(int(entry.name))
    return found
