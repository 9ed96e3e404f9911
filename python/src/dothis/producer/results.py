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

A wait reads the hash once before it sleeps, so that an outcome announced before it listened is
not missed; that read is spared (one round trip of the single-task latency) when the subscription
was up before the task was enqueued and has stayed up since: the listener then heard every
announcement of the task, and remembers the recent ones for a waiter that comes after it
(``mark`` and ``watch(since=...)``).

The same connection also subscribes to ``<queue>:outcomes`` (SPEC.md 6.1), where the ending
scripts publish each outcome as JSON while the channel has subscribers: a waiter woken by the
outcome message of its task gets the outcome with it (``Waiter.outcome``) and need not read the
hash. Nothing depends on it: a server that refuses the subscription (an ACL rule without the
channel) or workers whose scripts do not publish it leave waiters to the results message and a
read, as before.
"""

from __future__ import annotations

import contextlib
import json
import logging
import selectors
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

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
# The longest Queue.close() waits for the reading thread to end (it takes well under a
# millisecond once its socket is shut down; the bound is for a thread still connecting).
CLOSE_WAIT = 0.1
# The most hash reads the waits of one Queue make at once (their re-reads come on timers, and a new
# subscription wakes them all): a share of the client's connection pool, never all of it.
READS_AT_ONCE = 16
# How many of the latest announced task keys the listener remembers, for waiters that start
# listening after their task's message was heard (a wait whose mark is older reads the hash).
REMEMBERED = 1024
# After a waiter read the subscription itself (ResultListener.read_here), how long the thread
# leaves it to the next waiter before it reads again (it also reads at once for other waiters).
HAND_BACK_GRACE = 0.02


class SubscriptionDead(redis.ConnectionError):
    """The subscription's connection stopped answering."""


class Mark(NamedTuple):
    """Where the subscription stood when a task was enqueued: which subscription (1 for the
    first, +1 for each one made again) and how many messages it had heard by then."""

    subscription: int
    heard: int


class Waiter(threading.Event):
    """The event that wakes one wait; ``outcome`` holds the outcome fields of its task when an
    outcome message woke it (SPEC.md 6.1: ``result``, ``result-value``, ``error-*``)."""

    def __init__(self) -> None:
        super().__init__()
        self.outcome: dict[str, str] | None = None


# The members of an outcome message a wait takes (SPEC.md 6.1), besides ``task``.
OUTCOME_MEMBERS = ("result", "result-value", "error-code", "error-reason", "error-exception")


class Watch(NamedTuple):
    """What ``watch`` hands a waiter: the event that wakes it, and whether the hash must be read
    before waiting on it (False only when no announcement of the task can have been missed)."""

    event: Waiter
    read_first: bool


class ResultListener:
    def __init__(
        self, connect: Callable[[], redis.Redis], channel: str, outcomes: str | None = None
    ) -> None:
        """``channel``: ``<queue>:results``; ``outcomes``: ``<queue>:outcomes``, or None."""
        self._connect = connect
        self._channel = channel
        self._outcomes = outcomes.encode() if outcomes is not None else None
        self._outcomes_refused = False  # the server refused the subscription: not asked again
        self._lock = threading.Lock()
        self._waiters: dict[bytes, set[Waiter]] = {}
        self._thread: threading.Thread | None = None
        self._subscribed = threading.Event()
        self._closed = threading.Event()
        self._pubsub: redis.client.PubSub | None = None
        # From the module's settings when the listener is made (tests shorten them there).
        self.health_interval = HEALTH_INTERVAL
        self.health_timeout = HEALTH_TIMEOUT
        self.subscriptions = 0  # how many times the channel was subscribed (1 + resubscriptions)
        self.reads = threading.BoundedSemaphore(READS_AT_ONCE)  # held by a wait while it reads
        self._heard = 0  # messages heard since the listener began (every subscription)
        self._recent: OrderedDict[bytes, int] = OrderedDict()  # key -> when last heard (_heard)
        # Who reads the subscription: the thread, or for a moment a waiter (read_here). The
        # reader holds _reading; a waiter that wants it sets _direct and writes to _wake_w.
        self._reading = threading.Lock()
        self._direct = False
        self._handed_back = threading.Condition(self._lock)
        self._parked = False  # the thread waits for a waiter to hand the socket back
        self._handed_at = 0.0
        self._needed = False  # waits need the thread to read for them: it stops waiting
        self._wake_w: socket.socket | None = None
        self._heard_at = 0.0  # when the subscription last carried anything (health check)
        self._pinged: float | None = None  # when an unanswered health PING was sent

    def mark(self) -> Mark | None:
        """Taken before a task is enqueued: None unless the subscription is up now."""
        with self._lock:
            return Mark(self.subscriptions, self._heard) if self._subscribed.is_set() else None

    @contextmanager
    def watch(
        self, key: str, within: float | None = None, since: Mark | None = None
    ) -> Iterator[Watch]:
        """An event set whenever ``key`` is announced (or the subscription was re-made).

        Waits for the subscription at most ``within`` seconds (and never more than
        ``SUBSCRIBE_WAIT``), so that a hash read after it cannot miss a message; when it is not up
        by then the caller goes on without it: the event is set once it is, and the caller
        re-reads the hash on its own timer meanwhile.

        ``since``: the ``mark`` taken before the task was enqueued. When that subscription is
        still the one up, every announcement of ``key`` was heard: one already heard sets the
        event at once, and ``read_first`` is False (no read is needed before waiting).
        """
        event = Waiter()
        encoded = key.encode()
        with self._lock:
            same = self._waiters.setdefault(encoded, set())
            same.add(event)
            read_first = not self._covered(encoded, since)
            if self._parked and not self._direct and (len(self._waiters) > 1 or len(same) > 1):
                self._needed = True  # several waits: the thread reads for them (read_here)
                self._handed_back.notify_all()
        try:
            if read_first:
                self._ensure_subscribed(SUBSCRIBE_WAIT if within is None else
                                        min(max(within, 0.0), SUBSCRIBE_WAIT))  # fmt: skip
            yield Watch(event, read_first)
        finally:
            with self._lock:
                events = self._waiters.get(encoded)
                if events is not None:
                    events.discard(event)
                    if not events:
                        del self._waiters[encoded]

    def _covered(self, key: bytes, since: Mark | None) -> bool:
        """(Under the lock) Whether every announcement of ``key`` since ``since`` was heard and
        is known: the same subscription is still up and the listener still remembers all it
        heard since then. An announcement heard already sets the waiters of ``key`` at once."""
        current = self.subscriptions if self._subscribed.is_set() else None
        if since is None or current != since.subscription:
            return False
        if self._heard - since.heard > REMEMBERED:
            return False
        heard = self._recent.get(key)
        if heard is not None and heard > since.heard:
            for event in self._waiters.get(key, ()):
                event.set()
        return True

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
                self._heard += 1
                self._recent[key] = self._heard
                self._recent.move_to_end(key)
                if len(self._recent) > REMEMBERED:
                    self._recent.popitem(last=False)
                events = list(self._waiters.get(key, ()))
        for event in events:
            event.set()

    def _outcome(self, data: bytes) -> None:
        """An outcome message: the waiters of its task wake with the outcome. One that does not
        parse, or has no ``result``, wakes nobody (its results message follows)."""
        try:
            message = json.loads(data)
            key, result = message["task"], message["result"]
        except (ValueError, TypeError, KeyError):
            return
        if not isinstance(key, str) or not isinstance(result, str):
            return
        outcome = {name: value for name in OUTCOME_MEMBERS
                   if isinstance(value := message.get(name), str)}  # fmt: skip
        with self._lock:
            events = list(self._waiters.get(key.encode(), ()))
        for event in events:
            event.outcome = outcome
            event.set()

    def _run(self) -> None:
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        with self._lock:
            self._wake_w = wake_w
        try:
            self._serve(wake_r)
        finally:
            with self._lock:
                self._wake_w = None
            wake_r.close()
            wake_w.close()

    def _serve(self, wake: socket.socket) -> None:
        delay = 0.1
        while not self._closed.is_set():
            client = self._connect()
            pubsub = client.pubsub()  # type: ignore[no-untyped-call]
            self._pubsub = pubsub
            try:
                self._listen(pubsub, wake)
                delay = 0.1
            except (redis.ConnectionError, redis.TimeoutError, OSError, ValueError) as error:
                if self._closed.is_set():
                    return
                with self._lock:
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

    def _listen(self, pubsub: redis.client.PubSub, wake: socket.socket) -> None:
        pubsub.subscribe(self._channel)
        if self._closed.is_set():  # closed while connecting: close() found no socket to shut
            return
        asked = time.monotonic()
        confirmed = None
        while confirmed is None or confirmed.get("type") != "subscribe":
            confirmed = pubsub.get_message(timeout=min(1.0, self.health_timeout))
            if self._closed.is_set():
                return
            if confirmed is None and time.monotonic() - asked > self.health_timeout:
                raise SubscriptionDead(f"no reply to SUBSCRIBE within {self.health_timeout} s")
        self._subscribe_outcomes(pubsub)
        with self._lock:  # mark() sees the new count and the flag together
            self.subscriptions += 1
            self._subscribed.set()
        self._wake(None)
        self._heard_at = time.monotonic()
        self._pinged = None
        connection = pubsub.connection
        if connection is None or getattr(connection, "_sock", None) is None:
            raise redis.ConnectionError("the subscription has no connection")
        with selectors.DefaultSelector() as selector:
            selector.register(connection._sock, selectors.EVENT_READ)
            selector.register(wake, selectors.EVENT_READ)
            while not self._closed.is_set():
                with self._reading:
                    try:
                        while not self._closed.is_set() and not self._direct:
                            if connection.can_read(timeout=0):  # buffered, or on the socket
                                self._handle(pubsub.get_message(timeout=self.health_timeout))
                                continue
                            self._check_health(pubsub)
                            ready = selector.select(min(1.0, self.health_interval))
                            if any(key.fileobj is wake for key, _ in ready):
                                with contextlib.suppress(OSError):
                                    wake.recv(4096)
                    except BaseException:
                        with self._lock:  # before a waiter can take the failed connection
                            self._subscribed.clear()
                        raise
                with self._handed_back:  # a waiter reads (read_here): wait until it is done
                    self._parked = True
                    try:
                        self._wait_handed_back()
                    finally:
                        self._parked = self._needed = False

    def _subscribe_outcomes(self, pubsub: redis.client.PubSub) -> None:
        """Subscribe to the outcome messages too, unless the server refused it once; messages
        of the results channel that come meanwhile are handled as they come."""
        if self._outcomes is None or self._outcomes_refused:
            return
        try:
            pubsub.subscribe(self._outcomes)
            asked = time.monotonic()
            while not self._closed.is_set():
                message = pubsub.get_message(timeout=min(1.0, self.health_timeout))
                if message is not None and message.get("type") == "subscribe" \
                        and message.get("channel") == self._outcomes:  # fmt: skip
                    return
                self._handle(message)
                if message is None and time.monotonic() - asked > self.health_timeout:
                    raise SubscriptionDead(f"no reply to SUBSCRIBE within {self.health_timeout} s")
        except redis.ResponseError as error:  # refused (NOPERM): waits read the hash as before
            self._outcomes_refused = True
            pubsub.channels.pop(self._outcomes, None)
            pubsub.channels.pop(self._outcomes.decode(), None)
            log.info("not subscribed to %s (%s); results are read from the task hashes",
                     self._outcomes.decode(), error)  # fmt: skip

    def _wait_handed_back(self) -> None:
        """(Under the lock) Until a waiter that handed the socket back still waits, or other
        waits need this thread to read for them (``_needed``), or no waiter has read for
        ``HAND_BACK_GRACE`` seconds: a wait after a wait (one task at a time) takes the socket
        over with no thread woken."""
        while not self._closed.is_set():
            if self._direct:
                self._handed_back.wait(1.0)
                continue
            if self._needed:
                return
            left = self._handed_at + HAND_BACK_GRACE - time.monotonic()
            if left <= 0:
                return
            self._handed_back.wait(left)

    def _handle(self, message: dict[str, Any] | None) -> None:
        """A message read from the subscription, by the thread or a waiter (holding _reading)."""
        if message is None:
            return
        self._heard_at = time.monotonic()
        kind = message.get("type")
        if kind == "message":
            if self._outcomes is not None and message.get("channel") == self._outcomes:
                self._outcome(message["data"])
            else:
                self._wake(message["data"])
        elif kind == "pong":
            self._pinged = None

    def _check_health(self, pubsub: redis.client.PubSub) -> None:
        now = time.monotonic()
        if self._pinged is not None and now - self._pinged > self.health_timeout:
            raise SubscriptionDead(
                f"no reply to PING within {self.health_timeout} s: the connection is dead"
            )
        if self._pinged is None and now - self._heard_at >= self.health_interval:
            pubsub.ping(PING_PAYLOAD.decode())
            self._pinged = now

    def read_here(self, key: str, event: threading.Event, seconds: float) -> None:
        """Read the subscription in the calling thread (the waiter of ``key``, woken by
        ``event``: what ``watch`` gave it) until ``event``
        is set or ``seconds`` pass, instead of being woken by the listening thread: the message
        reaches the waiter with no hand-over between threads. Every message read is dispatched
        as the thread would. Only for a lone wait (a producer waiting on one task at a time):
        returns at once when other waits are under way or the subscription is not up; any error
        is left to the thread, which meets it too."""
        encoded = key.encode()
        with self._lock:
            pubsub, wake_w = self._pubsub, self._wake_w
            if self._direct or not self._subscribed.is_set() or wake_w is None or pubsub is None:
                return
            if len(self._waiters) > 1 or len(self._waiters.get(encoded, ())) > 1:
                return  # several waits at once: the thread serves them all, as it reads anyway
            self._direct = True
            parked = self._parked
        deadline = time.monotonic() + seconds
        try:
            if not parked:
                with contextlib.suppress(OSError):
                    wake_w.send(b"w")  # the thread leaves its select and hands the socket over
            if not self._reading.acquire(timeout=seconds):
                return
            try:
                if pubsub is not self._pubsub or not self._subscribed.is_set():
                    return
                while not event.is_set() and not self._closed.is_set():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    message = pubsub.get_message(timeout=left)
                    if message is None:
                        break
                    self._handle(message)
            except Exception:  # a failed or closed connection: the thread meets it and recovers
                pass
            finally:
                self._reading.release()
        finally:
            with self._handed_back:
                self._direct = False
                self._handed_at = time.monotonic()
                # the thread reads again at once when this wait goes on waiting or others wait;
                # when it is done and alone, the thread leaves the socket to the next wait (a
                # producer waiting on one task at a time then wakes no thread at all)
                mine = self._waiters.get(encoded, ())
                if not event.is_set() or len(self._waiters) > 1 or len(mine) > 1:
                    self._needed = True
                    self._handed_back.notify_all()

    def close(self) -> None:
        """Stop listening at once: shutting the socket down ends the subscription on the server
        and wakes the reading thread, which then closes its connection and ends; close waits
        for that at most ``CLOSE_WAIT`` seconds (a thread still connecting ends by itself as soon
        as its SUBSCRIBE is sent: it checks for close after that)."""
        self._closed.set()
        with self._handed_back:
            self._handed_back.notify_all()
            if self._wake_w is not None:
                with contextlib.suppress(OSError):
                    self._wake_w.send(b"c")
        pubsub = self._pubsub
        connection = pubsub.connection if pubsub is not None else None
        sock = getattr(connection, "_sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=CLOSE_WAIT)
