"""One lane per queue a worker serves: its keys, runner, reaper, scheduled promotion and worker
key. A worker serving ``--queue high --queue low`` has two lanes and claims from them in order."""

from __future__ import annotations

import logging
import os
import socket
from typing import TYPE_CHECKING, Any, cast

import redis

from dothis import codec
from dothis.connection import unreachable
from dothis.protocol import PROTOCOL_VERSION, Keys, now_iso, now_ms
from dothis.reaper import Reaper
from dothis.runner import REDIS_ERRORS, Runner
from dothis.scripts import Scripts

if TYPE_CHECKING:
    from dothis.worker import Worker

log = logging.getLogger("dothis.worker")

PROMOTE_BATCH = 100


class Lane:
    def __init__(self, worker: Worker, queue: str, runner_args: tuple[Any, ...]) -> None:
        self.keys = Keys(queue)
        self.worker = worker
        self.client = worker.client
        self.scripts: Scripts = worker.scripts
        self.runner = Runner(worker.client, worker.scripts, self.keys, worker.id, worker.options,
                             worker.registry, *runner_args)  # fmt: skip
        self.reaper = Reaper(worker.client, worker.scripts, self.keys, worker.id,
                             worker.options.lease_ms, worker.options.max_claims,
                             self.runner.followups)  # fmt: skip

    async def register(self, fields: dict[str, str]) -> None:
        key = self.keys.worker(self.worker.id)
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(key, mapping=cast(Any, fields))
        pipe.pexpire(key, self.worker.options.lease_ms)
        await pipe.execute()

    async def heartbeat(self, fields: dict[str, str]) -> None:
        key = self.keys.worker(self.worker.id)
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(key, "heartbeat", now_iso())
        pipe.pexpire(key, self.worker.options.lease_ms)
        added, _ = await pipe.execute()
        if added:  # the field was new: the key had expired
            log.warning("worker key %s had expired (the worker was stalled or Redis lost it); "
                        "its tasks may run elsewhere too", key)  # fmt: skip
            await self.register(fields)

    async def release(self, entry: bytes) -> None:
        """Return one of this worker's running tasks to pending (recover.lua, not a loss)."""
        task_id, _ = self.keys.parse_entry(entry)
        if task_id is None:
            return
        keys, key = self.keys, self.keys.task(task_id)
        await self.scripts.recover(
            keys=[key, keys.executing, keys.pending, keys.failed, keys.dependents(task_id),
                  keys.releasing, keys.worker(self.worker.id)],
            args=[entry, self.worker.id, 0, now_iso(), keys.results, key, task_id, now_ms()],
        )  # fmt: skip

    async def promote_due(self) -> int:
        """Move due entries of <queue>:scheduled to pending (promote.lua); how many moved."""
        now = now_ms()
        due = cast(list[bytes], await self.client.zrangebyscore(
            self.keys.scheduled, "-inf", now, start=0, num=PROMOTE_BATCH))  # fmt: skip
        if not due:
            return 0
        pipe = self.client.pipeline(transaction=False)
        for entry in due:
            task_id, _ = self.keys.parse_entry(entry)
            # An invalid id gets no key of its own; the claim that follows rejects it.
            key = self.keys.task(task_id) if task_id is not None else self.keys.task_prefix
            await self.scripts.promote(keys=[key, self.keys.scheduled, self.keys.pending],
                                       args=[entry, now], client=pipe)  # fmt: skip
        return sum(await pipe.execute())


def worker_fields(worker: Worker) -> dict[str, str]:
    from dothis import __version__

    now = now_iso()
    return {
        "id": worker.id, "host": socket.gethostname(), "pid": str(os.getpid()),
        "language": "python", "version": __version__, "protocol": str(PROTOCOL_VERSION),
        "queues": codec.encode(worker.queues), "functions": codec.encode(worker.registry.names()),
        "concurrency": str(worker.options.concurrency), "started": now, "heartbeat": now,
    }  # fmt: skip


async def check_redis(client: Any, url: str) -> None:
    """Fail with a clear error when Redis is unreachable; warn about unsafe settings."""
    try:
        await client.ping()
    except REDIS_ERRORS as error:
        raise unreachable(url, error) from error
    try:
        config: dict[Any, Any] = await client.config_get("maxmemory-policy")
        persistence: dict[Any, Any] = await client.config_get("appendonly")
    except redis.ResponseError:
        return  # CONFIG is disabled on some hosted Redis; nothing to check then
    if persistence.get(b"appendonly") == b"no":
        log.info("Redis has appendonly no: a Redis crash can lose acknowledged tasks (SPEC.md "
                 "4.4); use appendonly yes with appendfsync everysec or always")  # fmt: skip
    policy = config.get(b"maxmemory-policy")
    if policy not in (None, b"noeviction"):
        log.warning("Redis maxmemory-policy is %s: it can evict task hashes and worker keys and "
                    "lose tasks; set maxmemory-policy noeviction", policy.decode())  # fmt: skip
