"""Waiters never hang: a results subscription that dies silently (a NAT or firewall forgets the
connection: no error, no message, ever) neither keeps ``Task.wait()`` from returning nor makes it
overshoot its timeout.

The dead connection is real: the Queue talks to redis-server through a loopback TCP proxy of the
test's own, which can stop forwarding a connection's traffic, both ways, without closing it. The
task is then finished through a direct connection, so the message is published to a subscriber
that never receives it.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import taskfns  # noqa: F401  (registers echo for the worker)
from support import RedisServer, wait_until

from dothis import Queue, WaitTimeout
from dothis.producer import results as results_module
from dothis.producer import task as task_module
from dothis.wire.protocol import Keys

pytestmark = pytest.mark.integration

RECHECK_MAX = 5.0  # the default bound on Task.wait's re-reading timer, task.RECHECK_MAX_SECONDS


class _Link:
    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.sent = b""  # the first bytes the client sent, to tell subscribers apart
        self.dead = False

    @property
    def subscriber(self) -> bool:
        return b"SUBSCRIBE" in self.sent.upper()


class BlackHoleProxy:
    """A loopback TCP proxy to a redis-server. ``black_hole_subscribers`` makes the connections
    that subscribed drop every byte from then on, both ways, and close nothing: neither end can
    tell (what a NAT that forgot the connection does). New connections forward normally, unless
    ``swallow_subscribers`` is set: then a connection goes dead as soon as it sends SUBSCRIBE."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.links: list[_Link] = []
        self.lock = threading.Lock()
        self.swallow_subscribers = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            link = _Link(client, upstream)
            with self.lock:
                self.links.append(link)
            for source, target, outbound in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(
                    target=self._pump, args=(link, source, target, outbound), daemon=True
                ).start()

    def _pump(self, link: _Link, source: socket.socket, target: socket.socket,
              outbound: bool) -> None:  # fmt: skip
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                return
            if not data:
                if not link.dead:  # a real close travels on, a black-holed one never happens
                    for sock in (link.client, link.upstream):
                        sock.close()
                return
            if outbound and len(link.sent) < 4096:
                link.sent += data
                if self.swallow_subscribers and link.subscriber:
                    link.dead = True
            if link.dead:
                continue
            try:
                target.sendall(data)
            except OSError:
                return

    def subscribers(self) -> list[_Link]:
        with self.lock:
            return [link for link in self.links if link.subscriber and not link.dead]

    def black_hole_subscribers(self) -> int:
        links = self.subscribers()
        for link in links:
            link.dead = True
        return len(links)

    def close(self) -> None:
        self.listener.close()
        with self.lock:
            for link in self.links:
                for sock in (link.client, link.upstream):
                    sock.close()


class Waiting:
    """``task.wait(timeout)`` in a thread: what it returned or raised, and when."""

    def __init__(self, task: Any, timeout: float | None = None) -> None:
        self.value: Any = None
        self.error: BaseException | None = None
        self.ended: float | None = None
        self.started = time.monotonic()
        self.thread = threading.Thread(target=self._run, args=(task, timeout), daemon=True)
        self.thread.start()

    def _run(self, task: Any, timeout: float | None) -> None:
        try:
            self.value = task.wait(timeout)
        except BaseException as error:
            self.error = error
        self.ended = time.monotonic()

    def join(self, within: float) -> float:
        """Seconds the wait took; fails when it has not ended ``within`` seconds from now."""
        self.thread.join(within)
        assert not self.thread.is_alive(), f"wait() still blocked after {within} s more"
        assert self.ended is not None
        return self.ended - self.started


@pytest.fixture
def proxy(redis_server: RedisServer) -> Iterator[BlackHoleProxy]:
    through = BlackHoleProxy(redis_server.port)
    yield through
    through.close()


@pytest.fixture
def queue(proxy: BlackHoleProxy, queue_name: str) -> Iterator[Queue]:
    with Queue(queue_name, proxy.url) as q:
        yield q


def subscribed(r: redis.Redis, channel: str) -> int:
    return int(dict(r.pubsub_numsub(channel))[channel.encode()])  # type: ignore[no-untyped-call]


def finish_directly(r: redis.Redis, queue_name: str, task_id: str, value: Any) -> int:
    """The worker's side, over a direct connection: write the outcome, then announce it.
    Returns how many subscribers Redis handed the message to."""
    keys = Keys(queue_name)
    outcome = {"state": "finished", "result": "successful", "result-value": json.dumps(value),
               "finished-created": "2024-01-01T00:00:00.000000Z"}  # fmt: skip
    r.hset(keys.task(task_id), mapping=outcome)
    return int(r.publish(keys.results, keys.task(task_id)))


def dead_subscription(r: redis.Redis, proxy: BlackHoleProxy, queue: Queue) -> None:
    """Wait for the queue's subscription, then black-hole it."""
    wait_until(lambda: proxy.subscribers() and subscribed(r, queue.keys.results) >= 1)
    assert proxy.black_hole_subscribers() == 1


def test_dead_subscription_is_detected_and_made_again(
    r: redis.Redis, proxy: BlackHoleProxy, queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the health check can save this wait: the hash is not re-read on a timer here."""
    monkeypatch.setattr(task_module, "RECHECK_FIRST_SECONDS", 3600.0, raising=False)
    monkeypatch.setattr(task_module, "RECHECK_MAX_SECONDS", 3600.0, raising=False)
    queue.results.health_interval = 0.3
    queue.results.health_timeout = 0.7
    task = queue.enqueue("echo", text="x")
    waiting = Waiting(task)
    dead_subscription(r, proxy, queue)
    finish_directly(r, queue.name, task.id, "done")  # published to the dead subscriber
    assert waiting.join(within=5) < 6
    assert waiting.error is None and waiting.value == "done"
    # ... and the new subscription carries the next message at once
    wait_until(lambda: queue.results.subscriptions >= 2 and queue.results.subscribed)
    again = queue.enqueue("echo", text="y")
    second = Waiting(again)
    time.sleep(0.2)
    finish_directly(r, queue.name, again.id, "again")
    assert second.join(within=2) < 2
    assert second.value == "again"


def test_wait_without_timeout_returns_when_every_message_is_lost(
    r: redis.Redis, proxy: BlackHoleProxy, queue_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the re-reading timer can save this wait: the subscription is never found dead."""
    monkeypatch.setattr(results_module, "HEALTH_INTERVAL", 3600.0, raising=False)
    monkeypatch.setattr(task_module, "RECHECK_MAX_SECONDS", 1.0, raising=False)
    with Queue(queue_name, proxy.url) as quiet:
        task = quiet.enqueue("echo", text="x")
        waiting = Waiting(task)
        dead_subscription(r, proxy, quiet)
        time.sleep(2)  # the timer is at its maximum by now
        finished = time.monotonic()
        finish_directly(r, quiet.name, task.id, "done")
        waiting.join(within=5)
        assert waiting.error is None and waiting.value == "done"
        assert waiting.ended is not None
        assert waiting.ended - finished < 1.0 + 0.5


def test_wait_with_timeout_returns_the_value_within_it(
    r: redis.Redis, proxy: BlackHoleProxy, queue_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reported case: ``wait(30)`` on a task done at 3 s, its message lost. With the default
    settings (the timer at most 5 s apart) it returns the value, within 5 s of the end."""
    monkeypatch.setattr(results_module, "HEALTH_INTERVAL", 3600.0, raising=False)
    with Queue(queue_name, proxy.url) as quiet:
        task = quiet.enqueue("echo", text="x")
        waiting = Waiting(task, timeout=12)
        dead_subscription(r, proxy, quiet)
        time.sleep(1)
        finished = time.monotonic()
        finish_directly(r, quiet.name, task.id, "done")
        waiting.join(within=12)
        assert waiting.error is None, waiting.error
        assert waiting.value == "done"
        assert waiting.ended is not None
        assert waiting.ended - finished < RECHECK_MAX + 0.5


def test_a_worker_finishes_the_task_behind_a_dead_subscription(
    r: redis.Redis,
    proxy: BlackHoleProxy,
    queue: Queue,
    start_worker: Any,
) -> None:
    """Default settings end to end: a real worker (direct connection) runs the task while the
    waiter's subscription is dead; ``wait()`` without a timeout returns its value."""
    task = queue.enqueue("echo", text="from the worker")
    waiting = Waiting(task)
    dead_subscription(r, proxy, queue)
    start_worker()
    wait_until(lambda: r.hget(queue.keys.task(task.id), "result") == b"successful")
    finished = time.monotonic()
    waiting.join(within=RECHECK_MAX + 2)
    assert waiting.error is None and waiting.value == "from the worker"
    assert waiting.ended is not None
    assert waiting.ended - finished < RECHECK_MAX + 0.5


def test_timeout_is_kept_when_the_subscription_never_comes_up(
    proxy: BlackHoleProxy, queue: Queue
) -> None:
    """Every SUBSCRIBE is swallowed: wait(t) raises WaitTimeout at t, not later, and not another
    error."""
    proxy.swallow_subscribers = True
    task = queue.enqueue("echo", text="x")
    waiting = Waiting(task, timeout=1.5)
    took = waiting.join(within=4)
    assert isinstance(waiting.error, WaitTimeout), repr(waiting.error)
    assert 1.5 <= took < 1.5 + 0.5


def test_wait_returns_when_the_subscription_never_comes_up(
    r: redis.Redis, proxy: BlackHoleProxy, queue: Queue
) -> None:
    proxy.swallow_subscribers = True
    task = queue.enqueue("echo", text="x")
    waiting = Waiting(task)
    time.sleep(0.5)
    finished = time.monotonic()
    finish_directly(r, queue.name, task.id, "anyway")
    waiting.join(within=RECHECK_MAX + 2)
    assert waiting.error is None, repr(waiting.error)
    assert waiting.value == "anyway"
    assert waiting.ended is not None
    assert waiting.ended - finished < RECHECK_MAX + 0.5


def test_timeout_is_kept_with_a_dead_subscription(
    r: redis.Redis, proxy: BlackHoleProxy, queue: Queue
) -> None:
    task = queue.enqueue("echo", text="x")
    waiting = Waiting(task, timeout=2.0)
    dead_subscription(r, proxy, queue)
    took = waiting.join(within=4)
    assert isinstance(waiting.error, WaitTimeout), repr(waiting.error)
    assert 2.0 <= took < 2.0 + 0.5
