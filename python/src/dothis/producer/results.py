"""One subscription to ``<queue>:results`` per Queue, shared by every waiting task.

A background thread reads the channel and wakes the waiters of the task key in each message. When
the subscription drops it wakes every waiter (each re-reads its hash, so no outcome is missed
while the connection was down) and subscribes again with backoff.

A connection can also die silently (a NAT or firewall forgets it: no error ever arrives, no
message either). So the thread sends PING on the subscription whenever it has heard nothing for
``HEALTH_INTERVAL`` seconds (which also keeps such middleboxes from forgetting it), and treats a
PING without a reply within ``HEALTH_TIMEOUT`` seconds, or a SUBSCRIBE without its confirmation, as
a lost connection. Waiters do not depend on any of this to end: ``Task.wait`` also re-reads the
hash on its own timer (SPEC.md 5.9: a client MAY poll).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import redis

log = logging.getLogger("dothis.results")

# Seconds without any traffic on the subscription before it is PINGed.
HEALTH_INTERVAL = 5.0
# Seconds a PING (or a SUBSCRIBE) may go without its reply before the connection counts as dead.
HEALTH_TIMEOUT = 5.0
# The longest a watch() waits for the subscription before its waiter goes on without it (every
# subscription, the first or a new one, wakes all waiters to re-read their hash, so waiting is only
# there to spare a read).
SUBSCRIBE_WAIT = 1.0
PING_PAYLOAD = b"dothis-results-health"
# The most hash reads the waits of one Queue make at once (their re-reads come on timers, and a new
# subscription wakes them all): a share of the client's connection pool, never all of it.
READS_AT_ONCE = 16


class SubscriptionDead(redis.ConnectionError):
    """The subscription's connection stopped answering."""


class ResultListener:
    def __init__(self, connect: Callable[[], redis.Redis], channel: str) -> None:
        self._connect = connect
        self._channel = channel
        self._lock = threading.Lock()
        self._waiters: dict[bytes, set[threading.Event]] = {}
        self._thread: threading.Thread | None = None
        self._subscribed = threading.Event()
        self._closed = threading.Event()
        self._pubsub: redis.client.PubSub | None = None
        # From the module's settings when the listener is made (tests shorten them there).
        self.health_interval = HEALTH_INTERVAL
        self.health_timeout = HEALTH_TIMEOUT
        self.subscriptions = 0  # how many times the channel was subscribed (1 + resubscriptions)
        self.reads = threading.BoundedSemaphore(READS_AT_ONCE)  # held by a wait while it reads

    @contextmanager
    def watch(self, key: str, within: float | None = None) -> Iterator[threading.Event]:
        """An event set whenever ``key`` is announced (or the subscription was re-made).

        Waits for the subscription at most ``within`` seconds (and never more than
        ``SUBSCRIBE_WAIT``), so that a hash read after it cannot miss a message; when it is not up
        by then the caller goes on without it: the event is set once it is, and the caller
        re-reads the hash on its own timer meanwhile.
        """
        event = threading.Event()
        encoded = key.encode()
        with self._lock:
            self._waiters.setdefault(encoded, set()).add(event)
        try:
            self._ensure_subscribed(SUBSCRIBE_WAIT if within is None else
                                    min(max(within, 0.0), SUBSCRIBE_WAIT))  # fmt: skip
            yield event
        finally:
            with self._lock:
                events = self._waiters.get(encoded)
                if events is not None:
                    events.discard(event)
                    if not events:
                        del self._waiters[encoded]

    @property
    def subscribed(self) -> bool:
        return self._subscribed.is_set()

    def _ensure_subscribed(self, wait: float) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"dothis-results-{self._channel}", daemon=True
                )
                self._thread.start()
        # Subscribing first and reading the hash after means no message can slip between them.
        self._subscribed.wait(wait)

    def _wake(self, key: bytes | None) -> None:
        with self._lock:
            if key is None:
                events = [event for group in self._waiters.values() for event in group]
            else:
                events = list(self._waiters.get(key, ()))
        for event in events:
            event.set()

    def _run(self) -> None:
        delay = 0.1
        while not self._closed.is_set():
            client = self._connect()
            pubsub = client.pubsub()  # type: ignore[no-untyped-call]
            self._pubsub = pubsub
            try:
                self._listen(pubsub)
                delay = 0.1
            except (redis.ConnectionError, redis.TimeoutError, OSError, ValueError) as error:
                if self._closed.is_set():
                    return
                self._subscribed.clear()
                self._wake(None)
                log.warning(
                    "results subscription to %s lost (%s); resubscribing", self._channel, error
                )
                self._closed.wait(delay)
                delay = min(delay * 2, 2.0)
            finally:
                with contextlib.suppress(Exception):
                    pubsub.close()
                    client.close()

    def _listen(self, pubsub: redis.client.PubSub) -> None:
        pubsub.subscribe(self._channel)
        asked = time.monotonic()
        confirmed = None
        while confirmed is None or confirmed.get("type") != "subscribe":
            confirmed = pubsub.get_message(timeout=min(1.0, self.health_timeout))
            if self._closed.is_set():
                return
            if confirmed is None and time.monotonic() - asked > self.health_timeout:
                raise SubscriptionDead(f"no reply to SUBSCRIBE within {self.health_timeout} s")
        self.subscriptions += 1
        self._subscribed.set()
        self._wake(None)
        heard = time.monotonic()
        pinged: float | None = None
        while not self._closed.is_set():
            message = pubsub.get_message(timeout=min(1.0, self.health_interval))
            now = time.monotonic()
            if message is not None:
                heard = now
                kind = message.get("type")
                if kind == "message":
                    self._wake(message["data"])
                elif kind == "pong":
                    pinged = None
            if pinged is not None and now - pinged > self.health_timeout:
                raise SubscriptionDead(
                    f"no reply to PING within {self.health_timeout} s: the connection is dead"
                )
            if pinged is None and now - heard >= self.health_interval:
                pubsub.ping(PING_PAYLOAD.decode())
                pinged = now

    def close(self) -> None:
        """Stop listening at once: the reading thread is woken by shutting its socket down."""
        self._closed.set()
        pubsub = self._pubsub
        connection = pubsub.connection if pubsub is not None else None
        sock = getattr(connection, "_sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=3)
