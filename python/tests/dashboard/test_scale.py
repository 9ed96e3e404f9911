"""Every page and API call answers in bounded time at 10^6 pending and 2x10^5 failed tasks.

A redis-server of the test's own is filled through a pipeline (the commands as RESP, written to
``redis-cli --pipe``: one round trip per batch, the fastest fill there is), then each call is timed
(best of 3) on that big queue and on a small one on the same server, and the big queue's time must
stay within 5x + 50 ms of the small one's. ``DOTHIS_SCALE=small`` runs it at 2x10^5 pending and
4x10^4 failed (a quicker check); the figures are printed either way (``pytest -s`` shows them).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient
from support import RedisServer

from dothis.dashboard import create_app
from dothis.wire.clock import now_ms

pytestmark = pytest.mark.integration

SMALL = os.environ.get("DOTHIS_SCALE", "") == "small"
PENDING = 200_000 if SMALL else 1_000_000
FAILED = 40_000 if SMALL else 200_000
SMALL_PENDING = SMALL_FAILED = 2_000  # the search window (1,000 of each list) is full on both
BATCH = 10_000
FIGURES: list[str] = []


def bulk(*parts: str) -> bytes:
    return (
        f"*{len(parts)}\r\n" + "".join(f"${len(p.encode())}\r\n{p}\r\n" for p in parts)
    ).encode()


def fill_commands(queue: str, pending: int, failed: int) -> Iterator[bytes]:
    """HSET of every task and LPUSH / ZADD of its ids in batches of 10,000, as RESP."""
    marker = "#" * 9  # ids have a fixed width: every task's HSET is this template with its id
    pending_hash = bulk("HSET", f"{queue}:task:p{marker}", "function", "echo", "state", "pending",
                        "args", '{"text": "hello"}', "pending-created",
                        "2026-01-01T00:00:00.000000Z").split(marker.encode())  # fmt: skip
    failed_hash = bulk("HSET", f"{queue}:task:f{marker}", "function", "fail", "state", "finished",
                       "result", "failed", "args", '{"message": "no"}', "error-code",
                       "exception", "error-reason", "no", "error-exception",
                       "Traceback (most recent call last):\nRuntimeError: no",
                       "finished-created", "2026-01-01T00:00:00.000000Z"
                       ).split(marker.encode())  # fmt: skip
    now = now_ms()
    for start in range(0, pending, BATCH):
        ids = [f"{index:09d}" for index in range(start, min(start + BATCH, pending))]
        yield b"".join(pending_hash[0] + i.encode() + pending_hash[1] for i in ids)
        yield bulk("LPUSH", f"{queue}:pending", *(f"p{i}" for i in ids))
    for start in range(0, failed, BATCH):
        ids = [f"{index:09d}" for index in range(start, min(start + BATCH, failed))]
        yield b"".join(failed_hash[0] + i.encode() + failed_hash[1] for i in ids)
        scores = [part for index, i in enumerate(ids)
                  for part in (str(now - 7_200_000 + (start + index) * 7_200_000 // failed),
                               f"f{i}")]  # fmt: skip
        yield bulk("ZADD", f"{queue}:failed", *scores)
    yield bulk("ZADD", "dothis.queues", str(now), queue)


def fill(server: RedisServer, queue: str, pending: int, failed: int) -> None:
    process = subprocess.Popen(["redis-cli", "-p", str(server.port), "--pipe"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # fmt: skip
    assert process.stdin is not None
    for chunk in fill_commands(queue, pending, failed):
        process.stdin.write(chunk)
    out, _ = process.communicate(timeout=300)
    assert process.returncode == 0 and b"errors: 0" in out, out


@pytest.fixture(scope="module")
def filled() -> Iterator[RedisServer]:
    server = RedisServer()
    started = time.monotonic()
    fill(server, "big", PENDING, FAILED)
    fill(server, "small", SMALL_PENDING, SMALL_FAILED)
    client = server.client()
    assert client.llen("big:pending") == PENDING and client.zcard("big:failed") == FAILED
    memory = client.info("memory")["used_memory_human"]
    took = time.monotonic() - started
    FIGURES.append(f"filled {PENDING:,} pending and {FAILED:,} failed in {took:.1f} s ({memory})")
    client.close()
    yield server
    server.stop()


def calls(queue: str, pending: int, failed: int) -> dict[str, str]:
    """Each call by a label: the first, middle and last pages of pending and failed, and more."""
    middle, end = pending // 2, pending - 50
    return {
        "overview /": "/",
        "/api/queues": "/api/queues",
        "/api/counts": "/api/counts",
        "/workers": "/workers",
        "/metrics": "/metrics",
        "pending, first page": f"/tasks?queue={queue}&state=pending",
        "pending, middle page": f"/tasks?queue={queue}&state=pending&start={middle}",
        "pending, last page": f"/tasks?queue={queue}&state=pending&start={end}",
        "failed, first page": f"/tasks?queue={queue}&state=failed",
        "failed, middle page": f"/tasks?queue={queue}&state=failed&start={failed // 2}",
        "/api/tasks pending, middle, 500": (f"/api/tasks?queue={queue}&state=pending"
                                            f"&start={middle}&count=500"),
        "/api/tasks failed, last 100": (f"/api/tasks?queue={queue}&state=failed"
                                        f"&start={failed - 100}&count=100"),
        "task page": f"/task?queue={queue}&id=p000000007",
        "/api/task": f"/api/task?queue={queue}&id=f000000007",
        "search page, by function": f"/search?queue={queue}&function=fail",
        "/api/search, args substring": f"/api/search?queue={queue}&args=hello",
    }  # fmt: skip


def best_of(client: TestClient, path: str, times: int = 3) -> float:
    best = float("inf")
    for _ in range(times):
        started = time.perf_counter()
        response = client.get(path)
        best = min(best, time.perf_counter() - started)
        assert response.status_code == 200, (path, response.text[:300])
    return best


def timings(server: RedisServer, queue: str, pending: int, failed: int) -> dict[str, float]:
    with TestClient(create_app(server.url, queues=[queue], poll_interval=0.001)) as client:
        client.get("/")  # warm: templates compiled, connections made
        return {label: best_of(client, path)
                for label, path in calls(queue, pending, failed).items()}  # fmt: skip


def test_every_call_is_bounded_at_scale(filled: RedisServer, capsys: Any) -> None:
    big = timings(filled, "big", PENDING, FAILED)
    small = timings(filled, "small", SMALL_PENDING, SMALL_FAILED)
    rows = [(path, small[path], big[path]) for path in big]
    FIGURES.append(f"{'call (best of 3)':34} {'2k/2k ms':>9} {f'{PENDING:,}/{FAILED:,} ms':>20}")
    for path, small_s, big_s in rows:
        FIGURES.append(f"{path:34} {small_s * 1000:9.1f} {big_s * 1000:20.1f}")
    with capsys.disabled():  # the figures, shown in every run
        print("\n" + "\n".join(FIGURES))
    slow = [(path, s, b) for path, s, b in rows if b > 5 * s + 0.050]
    assert not slow, f"not bounded (big > 5 x small + 50 ms): {slow}"


def test_a_page_reads_only_its_page(filled: RedisServer) -> None:
    """The rows of a page deep in the list are the ones at its offset, not a scan's."""
    with TestClient(create_app(filled.url, queues=["big"])) as client:
        params = {"queue": "big", "state": "pending", "start": PENDING - 3, "count": 50}
        page: dict[str, Any] = client.get("/api/tasks", params=params).json()
    assert page["total"] == PENDING
    assert [row["id"] for row in page["rows"]] == [f"p{i:09d}" for i in range(PENDING - 3, PENDING)]
