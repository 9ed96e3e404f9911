"""One subscription to ``<queue>:results`` per Queue, shared by every waiting task.

A background thread reads the channel and wakes the waiters of the task key in each message. When
the subscription drops it wakes every waiter (each re-reads its hash, so no outcome is missed
while the connection was down) and subscribes again with backoff.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import redis

log = logging.getLogger("dothis.results")


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

    @contextmanager
    def watch(self, key: str) -> Iterator[threading.Event]:
        """An event set whenever ``key`` is announced (or the subscription was re-made)."""
        event = threading.Event()
        encoded = key.encode()
        with self._lock:
            self._waiters.setdefault(encoded, set()).add(event)
        try:
            self._ensure_subscribed()
            yield event
        finally:
            with self._lock:
                events = self._waiters.get(encoded)
                if events is not None:
                    events.discard(event)
                    if not events:
                        del self._waiters[encoded]

    def _ensure_subscribed(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"dothis-results-{self._channel}", daemon=True
                )
                self._thread.start()
        # Subscribing first and reading the hash after means no message can slip between them.
        if not self._subscribed.wait(10):
            raise TimeoutError(f"could not subscribe to {self._channel} within 10 s")

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
                self._subscribed.set()  # waiters fall back to re-reading their hash meanwhile
            finally:
                with contextlib.suppress(Exception):
                    pubsub.close()
                    client.close()

    def _listen(self, pubsub: redis.client.PubSub) -> None:
        pubsub.subscribe(self._channel)
        confirmed = None
        while confirmed is None or confirmed.get("type") != "subscribe":
            confirmed = pubsub.get_message(timeout=1.0)
            if self._closed.is_set():
                return
        self._subscribed.set()
        self._wake(None)
        while not self._closed.is_set():
            message = pubsub.get_message(timeout=1.0)
            if message is not None and message.get("type") == "message":
                self._wake(message["data"])

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
