"""Scenario 6: a poison task that kills its worker every time it runs.

A supervisor restarts every worker that dies. The poison task must be claimed at most
``--max-claims`` times, then end failed with ``worker-lost``; after that it takes no more workers
down, so the restarts it costs are bounded by max-claims. Good tasks queued around it finish; one
that ran in the killed worker before its outcome was written runs again (at least once).
"""

from __future__ import annotations

import time

import pytest

from chaos.checker import Row
from chaos.harness import size
from dothis import Queue
from dothis.worker.pool.batches import BATCH

pytestmark = pytest.mark.chaos

MAX_CLAIMS = 3
LEASE_MS, REAP_MS = 1000, 250
TIMING = ("--lease-ms", str(LEASE_MS), "--heartbeat-ms", "250", "--reap-ms", str(REAP_MS),
          "--max-claims", str(MAX_CLAIMS))  # fmt: skip


def test_poison_task_is_bounded_by_max_claims(server, client, queue_name, history, fleets, table):
    began = time.monotonic()
    fleet = fleets(server.url, queue_name, *TIMING, log=history.log).start(2)
    fleet.wait_registered(client)
    good = size(20, 100)
    key = f"{queue_name}:task:poison"
    with Queue(queue_name, server.url) as queue:
        for number in range(good // 2):
            assert history.enqueue(queue, f"g{number:04d}")
        assert history.enqueue(queue, "poison", function="poison")
        for number in range(good // 2, good):
            assert history.enqueue(queue, f"g{number:04d}")

    def supervise(until: float) -> None:
        """Restart dead workers until ``until`` (monotonic); a bounded poll, not a sleep."""
        while time.monotonic() < until:
            for slot in fleet.dead():
                fleet.refill(slot)
            time.sleep(0.05)

    deadline = time.monotonic() + size(60, 90)
    while client.hget(key, "result") is None:
        assert time.monotonic() < deadline, f"poison not finished: {client.hgetall(key)}"
        supervise(time.monotonic() + 0.1)
    restarts_at_outcome = fleet.restarts
    # Two full recovery periods (SPEC.md 9.3) with no further deaths: the poison stays dead.
    supervise(time.monotonic() + 2 * (LEASE_MS + 2 * 1.2 * REAP_MS) / 1000)
    restarts = fleet.restarts
    fleet.wait_registered(client, timeout=60)
    deadline = time.monotonic() + 60
    while history.unfinished(client, queue_name) and time.monotonic() < deadline:
        supervise(time.monotonic() + 0.1)

    poison = client.hgetall(key)
    verdict = history.check(client, queue_name)
    executions = history.executions()["poison"]
    claims = int(poison.get(b"claims", b"0"))
    good_lost = [token for token in verdict.lost if token != "poison"]
    ok = (poison.get(b"error-code") == b"worker-lost" and claims <= MAX_CLAIMS
          and restarts <= MAX_CLAIMS and not good_lost and not verdict.unexpected)  # fmt: skip
    row = table(Row(
        "6 poison task", f"{restarts} worker deaths", verdict.acknowledged, len(good_lost),
        len(verdict.unexpected), f"{verdict.extra} (poison <= {MAX_CLAIMS - 1}, others <= "
        f"{BATCH} per death)",
        time.monotonic() - began, "pass" if ok else "FAIL",
        [f"poison: claims={claims} executions={executions} error-code="
         f"{poison.get(b'error-code', b'').decode()}; {verdict.summary()}"],
    ))  # fmt: skip
    assert poison.get(b"result") == b"failed", poison
    assert poison[b"error-code"] == b"worker-lost", poison
    assert claims <= MAX_CLAIMS and executions <= claims, (claims, executions)
    assert restarts == restarts_at_outcome, "the poison task kept killing workers after failing"
    assert restarts <= MAX_CLAIMS, row.notes
    assert not good_lost and not verdict.unexpected, verdict.summary()
    # SPEC.md 9.6: a task that ran, but whose outcome was not yet written when its worker died,
    # runs again. The worker gives a child short tries in batches (worker/pool/batches.py), so a
    # death can leave up to a batch of them; none runs more than once per death.
    again = {token: count for token, count in verdict.duplicated.items() if token != "poison"}
    assert len(again) <= BATCH * restarts, verdict.summary()
    assert max(again.values(), default=1) <= 1 + restarts, verdict.summary()
    assert client.llen(f"{queue_name}:executing") == 0
    fleet.stop_cleanly()
