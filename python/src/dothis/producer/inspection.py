"""Read-only views and housekeeping of a queue (rq's inspection API), mixed into Queue."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, cast

from dothis.errors import TaskNotFound
from dothis.producer.task import Task
from dothis.store.connection import SyncClient, translate_errors
from dothis.store.execute import SyncStore
from dothis.store.ops import Ops
from dothis.store.replies import Cancelled, Deleted, Requeued
from dothis.wire.clock import ms_from_iso, now_ms
from dothis.wire.protocol import DEFAULT_FAILURE_TTL, QUEUES_REGISTRY, Field, Keys


def glob_escape(text: str) -> str:
    """``text`` as a literal inside a Redis glob pattern."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def prefix_pattern(prefix: str) -> str:
    """The Redis glob pattern of every key that starts with ``prefix``, literally."""
    return glob_escape(prefix) + "*"


class Inspection:
    keys: Keys
    url: str
    ops: Ops

    @property
    def redis(self) -> SyncClient:  # provided by Queue
        raise NotImplementedError

    @property
    def store(self) -> SyncStore:  # provided by Queue
        raise NotImplementedError

    def _tasks(self, ids: list[bytes]) -> list[Task]:
        return [Task(cast(Any, self), raw.decode("utf-8", "replace")) for raw in ids]

    def task_ids(self, start: int = 0, count: int = 100) -> list[str]:
        """Ids waiting in pending, the next to run first, one page."""
        with translate_errors(self.url):
            raw = cast(list[bytes], self.redis.lrange(self.keys.pending, -(start + count),
                                                      -(start + 1)))  # fmt: skip
        return [self.keys.parse_entry(entry)[0] or entry.decode("utf-8", "replace")
                for entry in reversed(raw)]  # fmt: skip

    def tasks(self, start: int = 0, count: int = 100) -> list[Task]:
        """Tasks waiting in pending, the next to run first, one page."""
        return self._tasks([task_id.encode() for task_id in self.task_ids(start, count)])

    def _registry(self, key: str, start: int, count: int) -> list[Task]:
        with translate_errors(self.url):
            ids = cast(list[bytes], self.redis.zrevrange(key, start, start + count - 1))
        return self._tasks(ids)

    def failed(self, start: int = 0, count: int = 100) -> list[Task]:
        """Tasks that did not succeed (failed, cancelled, expired), newest first, one page."""
        return self._registry(self.keys.failed, start, count)

    def succeeded(self, start: int = 0, count: int = 100) -> list[Task]:
        """Tasks that succeeded, newest first, one page."""
        return self._registry(self.keys.succeeded, start, count)

    def scheduled(self, start: int = 0, count: int = 100) -> list[Task]:
        """Tasks waiting for a due time, the soonest first, one page."""
        with translate_errors(self.url):
            ids = cast(list[bytes], self.redis.zrange(self.keys.scheduled, start,
                                                      start + count - 1))  # fmt: skip
        return self._tasks(ids)

    def requeue(self, task_id: str) -> bool:
        """Give a failed task a fresh start (requeue.lua); False if it is not in the failed set,
        or is there but is no longer a failed task (see ``requeue_outcome``)."""
        return self.requeue_outcome(task_id) == "requeued"

    def requeue_outcome(self, task_id: str) -> str:
        """requeue.lua (SPEC.md 5.12): ``requeued``; ``not-failed`` (the id is not in the failed
        registry); ``gone`` (its hash expired: the id left the registry); ``not-finished`` (the
        hash is not a finished, unsuccessful task, e.g. its id was reused by a task that runs now:
        the stale id left the registry and nothing else changed)."""
        with translate_errors(self.url):
            done: Requeued = self.store.run(self.ops.requeue(task_id))
        return done.name.lower().replace("_", "-")

    def cancel(self, task_id: str) -> str:
        """cancel.lua: ``cancelled``, ``requested`` (running) or ``finished``; TaskNotFound when
        there is no such task."""
        with translate_errors(self.url):
            done = self.store.run(self.ops.cancel(task_id, DEFAULT_FAILURE_TTL))
        if done is Cancelled.NOT_FOUND:
            raise TaskNotFound(task_id, self.keys.queue)
        return done.name.lower()

    def delete_task(self, task_id: str) -> str:
        """delete.lua (SPEC.md 5.17): ``deleted`` (the hash and every entry of it are gone; tasks
        waiting for it fail with dependency-failed) or ``running`` (it is executing: nothing done,
        cancel it first); TaskNotFound when there is no such task (its stale entries are removed
        all the same)."""
        with translate_errors(self.url):
            done = self.store.run(self.ops.delete(task_id))
        if done is Deleted.NOT_FOUND:
            raise TaskNotFound(task_id, self.keys.queue)
        return done.name.lower()

    def empty(self) -> int:
        """Remove every waiting entry of pending and delete those tasks' hashes; how many."""
        with translate_errors(self.url):
            pipe = self.redis.pipeline(transaction=True)
            pipe.lrange(self.keys.pending, 0, -1)
            pipe.delete(self.keys.pending)
            entries = cast(list[bytes], pipe.execute()[0])
            ids = [self.keys.parse_entry(entry)[0] for entry in entries]
            keys = [self.keys.task(task_id) for task_id in ids if task_id is not None]
            for index in range(0, len(keys), 1000):
                self.redis.unlink(*keys[index : index + 1000])
        return len(entries)

    def delete(self, delete_tasks: bool = True) -> None:
        """Delete the queue's lists, sets and registries (and, by default, every task hash).

        Workers serving the queue keep running and find it empty (their worker keys and
        ``<queue>:workers`` stay). Task hashes and dependents sets have no registry to read
        them from, so this is the one place that SCANs: the patterns are the literal prefixes
        ``<queue>:task:`` and ``<queue>:dependents:`` (glob characters of the queue name
        escaped) and a key is deleted only when it has the type of what it names (hash, set),
        so the pending list of a queue named ``<queue>:task:x`` is left alone.
        """
        names = [self.keys.pending, self.keys.scheduled, self.keys.failed, self.keys.succeeded,
                 self.keys.rejected, self.keys.releasing, self.keys.periodic,
                 self.keys.waiting]  # fmt: skip
        patterns = [(prefix_pattern(self.keys.dependents("")), b"set")]
        if delete_tasks:
            patterns.append((prefix_pattern(self.keys.task_prefix), b"hash"))
        with translate_errors(self.url):
            self.redis.unlink(*names)
            for pattern, kind in patterns:
                batch: list[bytes] = []
                for key in self.redis.scan_iter(match=pattern, count=1000):
                    batch.append(key)
                    if len(batch) == 1000:
                        self._unlink_typed(batch, kind)
                        batch.clear()
                if batch:
                    self._unlink_typed(batch, kind)

    def _unlink_typed(self, keys: list[bytes], kind: bytes) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.type(key)
        types = cast(list[bytes], pipe.execute())
        doomed = [key for key, found in zip(keys, types, strict=True) if found == kind]
        if doomed:
            self.redis.unlink(*doomed)


def live_workers(client: SyncClient, keys: Keys) -> list[dict[str, str]]:
    """The worker keys of the queue's live workers, read from the registry ``<queue>:workers``
    (SPEC.md 9.1): the ids whose score (their key's expiry, ms) is not past and whose key exists.
    Ids past their score are dead and removed (best effort: a read-only user just sees fewer).
    A worker that does not list itself (one written before the registry) is not shown."""
    now = now_ms()
    pipe = client.pipeline(transaction=False)
    pipe.zremrangebyscore(keys.workers, "-inf", f"({now}")
    pipe.zrangebyscore(keys.workers, now, "+inf")
    listed = pipe.execute(raise_on_error=False)[1]
    if isinstance(listed, Exception):
        raise listed
    ids = cast(list[bytes], listed)
    pipe = client.pipeline(transaction=False)
    for raw in ids:
        pipe.hgetall(keys.worker(raw.decode("utf-8", "replace")))
    found = pipe.execute(raise_on_error=False) if ids else []
    return [{k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in fields.items()}
            for fields in found if isinstance(fields, dict) and fields]  # fmt: skip


def queue_info(queue: Any) -> dict[str, Any]:
    keys: Keys = queue.keys
    with translate_errors(queue.url):
        client = queue.redis
        pipe = client.pipeline(transaction=False)
        pipe.llen(keys.pending)
        pipe.llen(keys.executing)
        pipe.llen(keys.rejected)
        pipe.zcard(keys.scheduled)
        pipe.zcard(keys.failed)
        pipe.zcard(keys.succeeded)
        pipe.zcard(keys.waiting)
        pipe.lindex(keys.pending, -1)
        pending, executing, rejected, scheduled, failed, succeeded, waiting, oldest = pipe.execute()
        workers = live_workers(client, keys)
        oldest_age = _age_seconds(client, keys, oldest)
    return {
        "pending": pending,
        "executing": executing,
        "scheduled": scheduled,
        "waiting": waiting,
        "succeeded": succeeded,
        "failed": failed,
        "rejected": rejected,
        "oldest_pending_seconds": oldest_age,
        "workers": workers,
    }


def _age_seconds(client: SyncClient, keys: Keys, entry: bytes | None) -> float | None:
    """How long the next pending task has waited (since its pending-created), or None."""
    task_id = keys.parse_entry(entry)[0] if entry is not None else None
    created = cast(
        bytes | None, client.hget(keys.task(task_id), "pending-created") if task_id else None
    )
    try:
        return max(0.0, (now_ms() - ms_from_iso(created.decode())) / 1000) if created else None
    except (ValueError, UnicodeDecodeError):
        return None


def known_queues(client: SyncClient) -> list[str]:
    """Every queue name in the registry of queues (``dothis.queues``, SPEC.md 2.3), sorted by
    name; read with one ZRANGE, never KEYS or SCAN."""
    names = cast(list[bytes], client.zrange(QUEUES_REGISTRY, 0, -1))
    return sorted(name.decode("utf-8", "replace") for name in names)


def hash_fields(
    client: SyncClient, keys: Keys, ids: Sequence[str], names: Sequence[str]
) -> list[list[str | None]]:
    """The fields ``names`` of each task hash of ``ids`` (None where absent), pipelined in
    batches of 1,000."""
    rows: list[list[bytes | None]] = []
    for start in range(0, len(ids), 1000):
        pipe = client.pipeline(transaction=False)
        for task_id in ids[start : start + 1000]:
            pipe.hmget(keys.task(task_id), list(names))
        rows += cast(list[list[bytes | None]], pipe.execute())
    return [[None if value is None else value.decode("utf-8", "replace") for value in row]
            for row in rows]  # fmt: skip


def pending_functions(queue: Any, count: int = 100) -> list[str]:
    """The function names of the next ``count`` pending tasks, the next to run first (entries
    that are not valid ids, and hashes without a function, are left out)."""
    keys: Keys = queue.keys
    with translate_errors(queue.url):
        client = queue.redis
        entries = cast(list[bytes], client.lrange(keys.pending, -count, -1))
        ids = [task_id for entry in reversed(entries)
               if (task_id := keys.parse_entry(entry)[0]) is not None]  # fmt: skip
        rows = hash_fields(client, keys, ids, [Field.FUNCTION])
    return [row[0] for row in rows if row[0]]


def failed_ids(queue: Any, function: str | None = None) -> list[str]:
    """Every id in the failed registry, newest first; with ``function``, only the ids whose
    hash names that function."""
    keys: Keys = queue.keys
    with translate_errors(queue.url):
        client = queue.redis
        raw = cast(list[bytes], client.zrevrange(keys.failed, 0, -1))
        ids = [task_id.decode("utf-8", "replace") for task_id in raw]
        if function is None:
            return ids
        rows = hash_fields(client, keys, ids, [Field.FUNCTION])
    return [task_id for task_id, row in zip(ids, rows, strict=True) if row[0] == function]
