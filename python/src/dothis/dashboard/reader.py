"""The dashboard's connection to Redis: one Queue per queue name, shared by every request.

Every read is a protocol read (SPEC.md 2): the keys come from ``Keys``, the queues from the
registry ``dothis.queues`` (or the names given), the workers from ``<queue>:workers``. A sharded
queue declared in ``dothis.shards`` (SPEC.md 11.2) is one name, ``emails``, standing for its
shards ``{emails.0}`` ...; the shards are not listed on their own.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from dothis.errors import InvalidArguments
from dothis.producer.inspection import known_queues
from dothis.producer.queue import Queue
from dothis.store.connection import SyncClient, connect, resolve_url, translate_errors
from dothis.store.shards import declared
from dothis.wire.shards import shard_name, shard_of


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

    def sharded(self) -> dict[str, int]:
        """Every declared sharded queue and its shard count."""
        with translate_errors(self.url):
            return declared(self.client)

    def shard_count(self, name: str) -> int | None:
        """The shard count of ``name`` when it is a declared sharded queue, else None."""
        return self.sharded().get(name)

    def parts(self, name: str, shards: int | None) -> list[str]:
        """The queues ``name`` stands for: its shards when it has ``shards``, else itself."""
        return [name] if shards is None else [shard_name(name, i) for i in range(shards)]

    def home(self, name: str, task_id: str) -> str:
        """The queue holding ``task_id`` of ``name``: the shard of its id on a sharded queue."""
        count = self.shard_count(name)
        return name if count is None else shard_name(name, shard_of(task_id, count))

    def queue_names(self) -> list[str]:
        """The names given, or every queue of the registry of queues that is a valid name, a
        sharded queue once by its own name in place of its shards."""
        if self.names is not None:
            return list(self.names)
        with translate_errors(self.url):
            found = known_queues(self.client)
        sharded = self.sharded()
        hidden = {part for name, count in sharded.items() for part in self.parts(name, count)}
        names = []
        for name in sorted({*(name for name in found if name not in hidden), *sharded}):
            try:
                self.queue(self.parts(name, sharded.get(name))[0])
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
