"""One logical queue over many shards (SPEC.md 11.2): ``Queue("emails", shards=4)``.

Each shard is an ordinary queue (``{emails.0}`` ... ``{emails.3}``), served by any worker of the
protocol. A task goes to the shard of its id (``crc32(id) mod N``), so fetch, cancel, delete and
wait find it without a lookup; a task with parents takes an id that lands in its parents' shard.
Counts and registries are summed or merged over the shards.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any, cast

from dothis.engine.registry import Registry
from dothis.errors import InvalidArguments
from dothis.producer.options import TaskOptions
from dothis.producer.queue import Call, FunctionRef, Queue, new_task_id
from dothis.producer.task import Task
from dothis.store.clock import measure
from dothis.store.connection import SyncClient, connect, resolve_url, translate_errors
from dothis.store.execute import SyncStore
from dothis.store.leases import note_queues
from dothis.store.ops import Ops
from dothis.store.shards import declare
from dothis.store.topology import check_queues, with_settings
from dothis.wire.protocol import DEFAULT_QUEUE, ID_MAX_BYTES, Keys, check_name
from dothis.wire.records import TaskInfo
from dothis.wire.shards import Shards, shard_of

# A task with parents draws random ids until one lands in its parents' shard: N draws on average.
MAX_ID_DRAWS = 100_000


class ShardedQueue(Queue, sharded=True):
    """A logical queue over ``shards`` ordinary queues; made by ``Queue(name, shards=N)``."""

    def __init__(
        self,
        name: str = DEFAULT_QUEUE,
        url: str | None = None,
        *,
        is_async: bool = True,
        registry: Registry | None = None,
        tls_ca: str | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        cluster: bool | None = None,
        shards: int | None = None,
        client: SyncClient | None = None,
    ) -> None:
        if shards is None:
            raise InvalidArguments("a ShardedQueue needs shards=N")
        if not is_async:
            raise InvalidArguments("eager mode (is_async=False) runs one queue in this process; "
                                   "leave shards out in tests that run tasks eagerly")  # fmt: skip
        del registry  # only eager mode uses it
        self.sharding = Shards(name, shards)
        self.keys = Keys(name)  # the logical name: never a key of its own
        self.name = name
        self.url = with_settings(resolve_url(url), tls_ca=tls_ca, tls_cert=tls_cert,
                                 tls_key=tls_key, cluster=cluster)  # fmt: skip
        check_queues(self.url, self.sharding.names)
        self.ops = Ops(self.keys)
        self._redis = client or connect(self.url)
        self._store = SyncStore(self._redis)
        self._results = None
        self._clock_checked = False
        self.eager = None
        self.parts = [Queue(part, self.url, client=self._redis) for part in self.sharding.names]
        for part in self.parts:
            part._store = self._store
            part._clock_checked = True  # this queue checks once for all its shards

    def __repr__(self) -> str:
        return f"Queue({self.name!r}, shards={self.sharding.count})"

    def shard(self, task_id: str) -> Queue:
        """The shard that holds (or will hold) the task ``task_id``."""
        return self.parts[shard_of(task_id, self.sharding.count)]

    def _tasks(self, ids: list[bytes]) -> list[Task]:
        found = [raw.decode("utf-8", "replace") for raw in ids]
        return [Task(self.shard(task_id), task_id) for task_id in found]

    def _check_clock(self) -> None:
        """Once: the clock (SPEC.md 9.8), the registry of queues (2.3) and the declaration of
        the shard count (11.2), which refuses a count other than the declared one."""
        if not self._clock_checked:
            with translate_errors(self.url):
                measure(self.store)
                note_queues(self.redis, self.sharding.names)
                declare(self.redis, self.sharding)
            self._clock_checked = True

    def _placed(self, options: TaskOptions) -> tuple[Queue, TaskOptions]:
        """The shard of a task and its options with its id fixed (SPEC.md 11.2)."""
        self._check_clock()
        parents = options.parents()
        homes = {shard_of(parent, self.sharding.count) for parent in parents}
        if len(homes) > 1:
            raise InvalidArguments(
                f"the parents of a task ({', '.join(parents)}) live in different shards of queue "
                f"{self.name!r}; a task and its parents share one shard (SPEC.md 11.2): enqueue "
                "the parents with depends_on on one of them, or as one group in one shard"
            )
        task_id = options.task_id
        if task_id is not None:
            try:
                check_name(task_id, "task id", ID_MAX_BYTES)
            except ValueError as error:
                raise InvalidArguments(str(error)) from error
        if homes:
            (home,) = homes
            if task_id is None:
                task_id = _id_in(home, self.sharding.count)
            elif shard_of(task_id, self.sharding.count) != home:
                raise InvalidArguments(
                    f"task id {task_id!r} lands in shard {shard_of(task_id, self.sharding.count)}"
                    f" of queue {self.name!r}, its parents in shard {home}: a task and its "
                    "parents share one shard (SPEC.md 11.2); leave task_id out to get an id "
                    "that lands there"
                )
        task_id = task_id or new_task_id()
        return self.shard(task_id), replace(options, task_id=task_id)

    def _enqueue(
        self, function: FunctionRef, args: Mapping[str, Any], options: TaskOptions
    ) -> Task:
        part, options = self._placed(options)
        return part._enqueue(function, args, options)

    def enqueue_many(
        self, calls: Iterable[Call | tuple[FunctionRef, Mapping[str, Any]]]
    ) -> list[Task]:
        """Queue many tasks, each in its shard; the order of the result is the order of
        ``calls``."""
        placed: dict[int, list[tuple[int, Call]]] = {}
        count = 0
        for index, item in enumerate(calls):
            call = item if isinstance(item, Call) else Call(*item)
            part, options = self._placed(TaskOptions(task_id=call.task_id, **call.options))
            fixed = Call(call.function, call.args, options.task_id, call.options)
            placed.setdefault(self.parts.index(part), []).append((index, fixed))
            count = index + 1
        tasks: list[Task | None] = [None] * count
        for shard, items in placed.items():
            made = self.parts[shard].enqueue_many([call for _, call in items])
            for (index, _), task in zip(items, made, strict=True):
                tasks[index] = task
        return cast(list[Task], tasks)

    def read_task(self, task_id: str) -> TaskInfo | None:
        return self.shard(task_id).read_task(task_id)

    def read_outcome(self, task_id: str) -> TaskInfo | None:
        return self.shard(task_id).read_outcome(task_id)

    def fetch(self, task_id: str) -> Task | None:
        """The task with this id, or None. Found in the shard of its id; a task a worker made
        (a callback, a periodic occurrence) lives in the shard of what made it, so the other
        shards are tried after."""
        home = self.shard(task_id)
        for part in [home, *(part for part in self.parts if part is not home)]:
            task = part.fetch(task_id)
            if task is not None:
                return task
        return None

    def requeue_outcome(self, task_id: str) -> str:
        return self.shard(task_id).requeue_outcome(task_id)

    def cancel(self, task_id: str) -> str:
        return self.shard(task_id).cancel(task_id)

    def delete_task(self, task_id: str) -> str:
        return self.shard(task_id).delete_task(task_id)

    def __len__(self) -> int:
        """How many entries wait in the pending lists of all the shards."""
        with translate_errors(self.url):
            pipe = self.redis.pipeline(transaction=False)
            for part in self.parts:
                pipe.llen(part.keys.pending)
            return sum(int(count) for count in pipe.execute())

    def _merged(self, key: str, start: int, count: int, newest: bool) -> list[Task]:
        """One page of a sorted set of every shard, merged by score."""
        pages = []
        with translate_errors(self.url):
            for part in self.parts:
                name = getattr(part.keys, key)
                read = part.redis.zrevrange if newest else part.redis.zrange
                rows = cast(list[tuple[bytes, float]],
                            read(name, 0, start + count - 1, withscores=True))  # fmt: skip
                pages.append([(-score if newest else score, raw, part) for raw, score in rows])
        merged = list(heapq.merge(*pages, key=lambda row: row[0]))[start : start + count]
        return [Task(part, raw.decode("utf-8", "replace")) for _, raw, part in merged]

    def failed(self, start: int = 0, count: int = 100) -> list[Task]:
        return self._merged("failed", start, count, newest=True)

    def succeeded(self, start: int = 0, count: int = 100) -> list[Task]:
        return self._merged("succeeded", start, count, newest=True)

    def scheduled(self, start: int = 0, count: int = 100) -> list[Task]:
        return self._merged("scheduled", start, count, newest=False)

    def task_ids(self, start: int = 0, count: int = 100) -> list[str]:
        """Ids waiting in pending, shard by shard (no order holds across shards)."""
        ids = [task_id for part in self.parts for task_id in part.task_ids(0, start + count)]
        return ids[start : start + count]

    def empty(self) -> int:
        return sum(part.empty() for part in self.parts)

    def delete(self, delete_tasks: bool = True) -> None:
        for part in self.parts:
            part.delete(delete_tasks)

    def close(self) -> None:
        for part in self.parts:
            if part._results is not None:
                part._results.close()
                part._results = None
            part._redis = None
        super().close()


def _id_in(shard: int, count: int) -> str:
    """A fresh random id that lands in ``shard``."""
    for _ in range(MAX_ID_DRAWS):
        task_id = new_task_id()
        if shard_of(task_id, count) == shard:
            return task_id
    raise InvalidArguments(f"no id found for shard {shard} of {count}")  # not reached in practice
