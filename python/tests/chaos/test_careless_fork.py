"""Scenario 15: a task that calls ``os.fork()`` and lets the child return from the task too.

``careless_fork`` forks; the parent returns the task's token, the child returns
``forked-child-of-<token>``, either first (the parent waits 0.3 s) or 0.5 s after the parent, when
its pool process already runs the next task. Tasks that fork alternate with plain ones on a
worker of two pool processes. Required: every task succeeds with its own value (never the
child's, never another task's), each runs once, and nothing is lost or stuck. The forked children
are stopped by pid at the end (the task writes their pids to ``$DOTHIS_CHAOS_FORKS``).

The ``async def`` variant forks the worker process itself (the task runs on its event loop): the
child is a copy of the whole worker, with its connections, and carries on serving.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path

import pytest

from chaos.harness import Watch, judge, log_lines, recovery_bound, settle, size, stop_at_full_size
from dothis import Queue

pytestmark = pytest.mark.chaos

LEASE_MS, REAP_MS = 1000, 250
TIMING = ("--lease-ms", str(LEASE_MS), "--heartbeat-ms", "250", "--reap-ms", str(REAP_MS),
          "--concurrency", "2", "--max-claims", "20")  # fmt: skip


def stop_forks(path: Path) -> int:
    """SIGKILL every forked child the tasks recorded that still runs; how many there were."""
    alive = 0
    if not path.exists():
        return 0
    for line in path.read_text().split():
        pid = int(line)
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"dothis" in command:  # still the forked copy, not a recycled pid
            alive += 1
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return alive


@pytest.mark.parametrize("function", ["careless_fork", "careless_fork_async"])
def test_careless_fork(server, client, queue_name, history, fleets, table, tmp_path, function):
    began = time.monotonic()
    forks = tmp_path / "forks"
    fleet = fleets(server.url, queue_name, *TIMING, log=history.log,
                   env={"DOTHIS_CHAOS_FORKS": str(forks)}).start(1)  # fmt: skip
    try:
        fleet.wait_registered(client, timeout=30)
        watch = Watch(server.port, queue_name, history, fleet.alive).start()
        count = size(8, 40)
        with Queue(queue_name, server.url) as queue:
            for number in range(count):
                child_first = number % 2 == 0
                assert history.enqueue(queue, f"fork{number:03d}", function=function,
                                       args={"child_first": child_first})  # fmt: skip
                assert history.enqueue(queue, f"plain{number:03d}", args={"seconds": 0.1})
        bound = recovery_bound(LEASE_MS, REAP_MS, run=0.5)
        # Beyond the recovery bound, the time the tasks themselves take: the async variant
        # holds the worker's event loop for 0.3 s in every other fork (count * 0.15 s), which
        # at full size is longer than the bound alone.
        missing = settle(history, client, queue_name, timeout=bound + 1 + count * 0.3)
        spans = watch.stop()
        values = {token: client.hget(f"{queue_name}:task:{token}", "result-value")
                  for token in history.acknowledged}  # fmt: skip
        alive = fleet.alive()
    finally:
        leftover = stop_forks(forks)
    misattributed = {token: value for token, value in values.items()
                     if value is not None and json.loads(value) != token}  # fmt: skip
    row, verdict = judge(table, f"15 careless fork, {function}", f"{count} tasks fork",
                         history, client, queue_name, spans=spans, bound=bound, began=began,
                         missing=missing, extra_bound=0)  # fmt: skip
    logs = fleet.outputs()
    row.notes.append(
        f"values not the task's own: {dict(list(misattributed.items())[:4])}; forked children "
        f"still running at the end: {leftover}; worker alive: {alive}; pool warnings: "
        f"{len(log_lines(logs, 'replaced'))}; tracebacks: {len(log_lines(logs, 'Traceback'))}"
    )
    if misattributed:
        row.verdict = "FAIL"
    assert not misattributed, row.notes[-1]
    assert not missing and verdict.ok, row.notes
    assert not verdict.extra, verdict.summary()
    assert alive, logs[-3000:]
    stop_at_full_size(fleet)
