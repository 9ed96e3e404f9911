"""The dashboard's connection to Redis: one Queue per queue name, shared by every request.

Every read is a protocol read (SPEC.md 2): the keys come from ``Keys``, the queues from the
registry ``dothis.queues`` (or the names given), the workers from ``<queue>:workers``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from dothis.errors import InvalidArguments
from dothis.producer.inspection import known_queues
from dothis.producer.queue import Queue
from dothis.store.connection import SyncClient, connect, resolve_url, translate_errors
from dothis.wire.clock import now, parse_iso


class Reader:
    """The queues a dashboard shows (``queues``: these names; None: every registered queue)."""

    def __init__(self, url: str | None, queues: Sequence[str] | None = None) -> None:
        self.url = resolve_url(url)
        self.names = None if queues is None else list(dict.fromkeys(queues))
        self._queues: dict[str, Queue] = {}
        self._lock = threading.Lock()
        self._client: SyncClient | None = None
        for name in self.names or ():
            self.queue(name)  # a name that is no queue name fails here, at start

    @property
    def client(self) -> SyncClient:
        with self._lock:
            if self._client is None:
                self._client = connect(self.url)
            return self._client

    def queue(self, name: str) -> Queue:
        """The Queue of ``name``; InvalidArguments when it cannot be a queue name."""
        with self._lock:
            found = self._queues.get(name)
            if found is None:
                found = self._queues[name] = Queue(name, self.url)
            return found

    def queue_names(self) -> list[str]:
        """The names given, or every queue of the registry of queues that is a valid name."""
        if self.names is not None:
            return list(self.names)
        with translate_errors(self.url):
            found = known_queues(self.client)
        names = []
        for name in found:
            try:
                self.queue(name)
            except InvalidArguments:
                continue  # not a queue name: ignored, as every reader of the registry does
            names.append(name)
        return names

    def ping(self) -> None:
        with translate_errors(self.url):
            self.client.ping()

    def close(self) -> None:
        with self._lock:
            for queue in self._queues.values():
                queue.close()
            self._queues.clear()
            if self._client is not None:
                self._client.close()
                self._client = None


def text(value: bytes | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return value.decode("utf-8", "replace")


def json_or_text(value: str | None) -> Any:
    """A JSON field's value, or the text itself when it is not JSON (None stays None)."""
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return value


def pretty(value: Any) -> str:
    """A decoded JSON value for a person: strings bare, the rest as indented JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False)


def age(timestamp: str | None, until: str | None = None) -> float | None:
    """Seconds from a protocol timestamp to ``until`` (another one) or now; None if unreadable."""
    if not timestamp:
        return None
    try:
        end: datetime = parse_iso(until) if until else now()
        return round(max(0.0, (end - parse_iso(timestamp)).total_seconds()), 3)
    except ValueError:
        return None


def duration(seconds: float | None) -> str:
    """``0.25s``, ``42s``, ``3m 05s``, ``2h 03m``, ``4d 02h``; ``-`` for None."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.2f}s"
    whole = int(seconds)
    for unit, size, small, small_size in (("d", 86400, "h", 3600), ("h", 3600, "m", 60),
                                          ("m", 60, "s", 1)):  # fmt: skip
        if whole >= size:
            return f"{whole // size}{unit} {whole % size // small_size:02d}{small}"
    return f"{whole}s"
