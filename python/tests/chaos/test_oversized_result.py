"""Scenario 8: a task returns a value larger than the worker's ``--max-value-bytes``.

The worker runs with ``--max-value-bytes 100000``; the redis-server with ``proto-max-bulk-len
1mb``, so that a value of 2 MB could not even be sent. Plain functions (in the process pool) and
``async def`` functions (on the event loop) return 50 kB (fits), 150 kB (over the worker's limit)
and 2 MB (over Redis's too). Required: every value over the limit ends the task ``failed`` with
``too-large`` (SPEC.md 5.4, 7.2) at once, not stuck in executing while the worker retries a write
Redis refuses; the others succeed; nothing is lost.
"""

from __future__ import annotations

import time

import pytest

from chaos.harness import Watch, judge, recovery_bound, settle, stop_at_full_size
from dothis import Queue

pytestmark = pytest.mark.chaos

LEASE_MS, REAP_MS = 1000, 250
LIMIT = 100_000
OPTIONS = ("--lease-ms", str(LEASE_MS), "--heartbeat-ms", "250", "--reap-ms", str(REAP_MS),
           "--concurrency", "2", "--max-value-bytes", str(LIMIT))  # fmt: skip
SIZES = {"fits": 50_000, "over": 150_000, "huge": 2_000_000}


def test_oversized_result_fails_too_large(servers, queue_name, history, fleets, table):
    began = time.monotonic()
    server = servers(extra=("--proto-max-bulk-len", "1mb"))
    client = server.client()
    fleet = fleets(server.url, queue_name, *OPTIONS, log=history.log).start(1)
    fleet.wait_registered(client, timeout=30)
    watch = Watch(server.port, queue_name, history, fleet.alive).start()
    expect: dict[str, str] = {}
    with Queue(queue_name, server.url) as queue:
        for function in ("big", "big_async"):
            for label, length in SIZES.items():
                token = f"{function}-{label}"
                assert history.enqueue(queue, token, function=function, args={"size": length})
                if length > LIMIT:
                    expect[token] = "too-large"
        for number in range(4):
            assert history.enqueue(queue, f"r{number}")
    bound = recovery_bound(LEASE_MS, REAP_MS)
    missing = settle(history, client, queue_name, timeout=bound + 2, fleet=fleet)
    row, verdict = judge(table, "8 oversized result", f"values up to 2 MB, limit {LIMIT} B",
                         history, client, queue_name, spans=watch.stop(), bound=bound,
                         began=began, missing=missing, expect=expect)  # fmt: skip
    sizes = {token: client.hstrlen(f"{queue_name}:task:{token}", "result-value")
             for token in history.acknowledged}  # fmt: skip
    row.notes.append(f"result-value bytes stored: {sizes}")
    fleet.check_alive()
    assert verdict.ok and not missing, row.notes
    assert all(length <= LIMIT + 2 for length in sizes.values()), sizes
    stop_at_full_size(fleet)
    client.close()
