"""Live counts: one shared poll per dashboard process, and none while nobody watches."""

from __future__ import annotations

import http.client
import json
import threading
import time
from typing import Any

import pytest
from support import wait_until

pytestmark = pytest.mark.integration

INTERVAL = 0.1


class Watcher:
    """One browser's event stream, read line by line from a plain HTTP connection."""

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.connection.request("GET", "/events", headers={"Accept": "text/event-stream"})
        self.response = self.connection.getresponse()
        assert self.response.status == 200
        assert self.response.headers["content-type"].startswith("text/event-stream")

    def next_counts(self) -> dict[str, Any]:
        event = None
        while True:
            line = self.response.readline().decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[len("event: ") :]
            elif line.startswith("data: ") and event == "counts":
                data: dict[str, Any] = json.loads(line[len("data: ") :])
                return data

    def close(self) -> None:
        self.response.close()
        self.connection.close()


def test_one_shared_poll_however_many_watch(serve, queue) -> None:  # type: ignore[no-untyped-def]
    queue.enqueue("echo", text="x")
    served = serve(poll_interval=INTERVAL)
    hub = served.hub
    assert hub.task is None and hub.polls == 0  # nobody watches yet: no poll at all
    watchers = [Watcher(served.port) for _ in range(4)]
    for watcher in watchers:
        assert watcher.next_counts()["queues"][queue.name]["pending"] == 1
    assert len(hub.subscribers) == 4
    task = hub.task
    started, polls = time.monotonic(), hub.polls
    queue.enqueue("echo", text="y")
    for watcher in watchers:  # every one sees the change, from the same poll
        while watcher.next_counts()["queues"][queue.name]["pending"] != 2:
            pass
    elapsed = time.monotonic() - started
    assert hub.task is task  # one poll task all along
    # One poll per interval, not one per watcher (4 watchers polling would be ~4 per interval).
    assert hub.polls - polls <= elapsed / INTERVAL + 2
    for watcher in watchers[:3]:
        watcher.close()
    wait_until(lambda: len(hub.subscribers) == 1)
    assert hub.task is task  # still one watcher: the poll goes on
    watchers[3].close()
    wait_until(lambda: hub.task is None and not hub.subscribers)
    stopped = hub.polls
    threading.Event().wait(INTERVAL * 6)  # a window in which a poll would show: none may
    assert hub.polls == stopped
    watcher = Watcher(served.port)  # the next watcher starts the poll again
    assert watcher.next_counts()["queues"][queue.name]["pending"] == 2
    assert hub.task is not None
    watcher.close()
    wait_until(lambda: hub.task is None)


def test_a_poll_that_fails_is_reported_and_retried(url) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    from dothis.dashboard.live import Hub

    calls = []

    async def poll() -> dict[str, Any]:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("Redis is down")
        return {"queues": {}}

    async def watch() -> list[dict[str, Any]]:
        hub = Hub(poll, interval=0.01)
        inbox = hub.subscribe()
        seen = [await asyncio.wait_for(inbox.get(), 5), await asyncio.wait_for(inbox.get(), 5)]
        hub.unsubscribe(inbox)
        assert hub.task is None
        return seen

    assert asyncio.run(watch()) == [{"error": "Redis is down"}, {"queues": {}}]
