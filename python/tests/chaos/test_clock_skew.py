"""Scenario 12: a worker whose clock is 10 minutes ahead of Redis's (libfaketime).

The worker runs under ``LD_PRELOAD=libfaketime`` with ``FAKETIME=+10m``; Redis, the producer
and the test share the real clock. SPEC.md 9.8: the worker measures its offset to Redis ``TIME``
and corrects every time it writes or compares. Required:

- tasks enqueued with ``ttl=60`` run and succeed (a worker reading its own clock would find them
  10 minutes old: ``expired``);
- tasks enqueued with ``delay=3`` (5 at full size) do not run before that has passed on Redis's
  clock (a worker reading its own clock would promote them at once);
- the skewed worker's finishes do not empty the failed (or succeeded) registry: entries younger
  than the registry's horizon by 5 minutes survive (with its own clock, its horizon would pass
  them);
- the timestamps it writes are on Redis's clock; it logs the offset in one warning.
"""

from __future__ import annotations

import time

import pytest

from chaos.harness import (
    Watch,
    faketime_library,
    judge,
    log_lines,
    recovery_bound,
    settle,
    size,
    stop_at_full_size,
)
from dothis import Queue
from dothis.wire.clock import ms_from_iso
from dothis.wire.protocol import DEFAULT_FAILURE_TTL, DEFAULT_RESULT_TTL

pytestmark = pytest.mark.chaos

LEASE_MS, REAP_MS = 1000, 250
TIMING = ("--lease-ms", str(LEASE_MS), "--heartbeat-ms", "250", "--reap-ms", str(REAP_MS),
          "--concurrency", "2", "--schedule-ms", "100")  # fmt: skip
SKEW = "+10m"
DELAY = size(3, 5)
MARGIN_MS = 5 * 60 * 1000  # registry entries this much younger than the horizon must stay


def redis_ms(client) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


def test_worker_ten_minutes_ahead(server, client, queue_name, history, fleets, table):
    began = time.monotonic()
    library = faketime_library()
    env = {"LD_PRELOAD": library, "FAKETIME": SKEW}
    now = start_ms = redis_ms(client)
    keep = {
        f"{queue_name}:failed": now - DEFAULT_FAILURE_TTL * 1000 + MARGIN_MS,
        f"{queue_name}:succeeded": now - DEFAULT_RESULT_TTL * 1000 + MARGIN_MS,
    }
    for registry, score in keep.items():
        client.zadd(registry, {f"kept-{number}": score for number in range(3)})
    fleet = fleets(server.url, queue_name, *TIMING, log=history.log, env=env).start(1)
    fleet.wait_registered(client, timeout=30)
    watch = Watch(server.port, queue_name, history, fleet.alive).start()
    expect: dict[str, str] = {}
    with Queue(queue_name, server.url) as queue:
        for number in range(10):
            assert history.enqueue(queue, f"ttl{number}", ttl=60)
        delayed_at = redis_ms(client)
        for number in range(10):
            assert history.enqueue(queue, f"delay{number}", delay=DELAY)
        for number in range(3):
            assert history.enqueue(queue, f"fail{number}", function="fails")
            expect[f"fail{number}"] = "exception"

    def ran_early() -> list[str]:
        runs = history.executions()
        return [token for token in runs if token.startswith("delay")]

    early: list[str] = []
    while redis_ms(client) < delayed_at + (DELAY - 0.5) * 1000:  # a bounded watch, not a wait
        early = early or ran_early()
        time.sleep(0.05)
    bound = recovery_bound(LEASE_MS, REAP_MS)
    missing = settle(history, client, queue_name, timeout=bound + 5, fleet=fleet)
    row, verdict = judge(table, "12 clock skew", f"worker clock {SKEW}", history, client,
                         queue_name, spans=watch.stop(), bound=bound, began=began,
                         missing=missing, expect=expect)  # fmt: skip
    started = {token: ms_from_iso(client.hget(f"{queue_name}:task:{token}",
                                              "executing-created").decode())
               for token in history.acknowledged if token.startswith("delay")
               and client.hexists(f"{queue_name}:task:{token}", "executing-created")}  # fmt: skip
    soonest = min(started.values(), default=0) - delayed_at
    stamps = [client.hget(f"{queue_name}:task:{token}", "finished-created")
              for token in history.acknowledged]  # fmt: skip
    finished = [ms_from_iso(value.decode()) for value in stamps if value]
    end_ms = redis_ms(client)  # every timestamp written must lie between start_ms and end_ms
    drift = max((max(start_ms - stamp, stamp - end_ms, 0) for stamp in finished), default=0)
    survivors = {registry: sum(client.zscore(registry, f"kept-{n}") is not None for n in range(3))
                 for registry in keep}  # fmt: skip
    logs = fleet.outputs()
    warnings = log_lines(logs, "clock is")
    row.notes.append(
        f"delayed tasks run before {DELAY - 0.5:g} s: {early}; soonest start after "
        f"{soonest / 1000:.2f} s (Redis clock); finished-created outside the run by at most "
        f"{drift / 1000:.1f} s; registry entries kept {survivors} of 3 each; offset warnings: "
        f"{warnings[:1]} x{len(warnings)}"
    )
    ok = (not early and soonest >= DELAY * 1000 - 50 and drift < 1000
          and all(count == 3 for count in survivors.values()) and len(warnings) >= 1)  # fmt: skip
    if not ok:
        row.verdict = "FAIL"
    fleet.check_alive()
    assert not missing and verdict.ok, row.notes
    assert not early, f"delayed tasks ran early: {early}"
    assert soonest >= DELAY * 1000 - 50, row.notes[-1]
    assert drift < 1000, row.notes[-1]
    assert all(count == 3 for count in survivors.values()), survivors
    assert warnings, "no warning about the clock offset"
    stop_at_full_size(fleet)
