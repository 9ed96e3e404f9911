"""The worker's lease: one worker key per queue it serves, renewed every heartbeat (SPEC.md 9.2)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from dothis.store import leases
from dothis.store.connection import REDIS_ERRORS, AsyncClient
from dothis.store.execute import AsyncStore
from dothis.worker.lane import Lane

log = logging.getLogger("dothis.worker")


class Heartbeat:
    name = "heartbeat"

    def __init__(self, store: AsyncStore, lanes: list[Lane], worker_id: str,
                 fields: Mapping[str, str], lease_ms: int, heartbeat_ms: int) -> None:  # fmt: skip
        self.client: AsyncClient = store.client
        self.store = store
        self.lanes = lanes
        self.worker_id = worker_id
        self.fields = fields
        self.lease_ms = lease_ms
        self.period = heartbeat_ms / 1000 / 1.2  # the jitter never stretches it past the beat

    async def register(self) -> None:
        for lane in self.lanes:
            key = lane.keys.worker(self.worker_id)
            await leases.register_async(self.client, key, self.fields, self.lease_ms)

    async def tick(self) -> None:
        for lane in self.lanes:
            key = lane.keys.worker(self.worker_id)
            if not await leases.heartbeat_async(self.client, key, self.lease_ms):
                log.warning("worker key %s had expired (the worker was stalled or Redis lost it); "
                            "its tasks may run elsewhere too", key)  # fmt: skip
                await leases.register_async(self.client, key, self.fields, self.lease_ms)

    async def leave(self) -> None:
        """Delete the worker keys; if Redis is away they expire with the lease."""
        try:
            for lane in self.lanes:
                await self.store.run(lane.ops.leave(self.worker_id))
        except REDIS_ERRORS as error:
            log.warning("could not remove the worker keys of %s (%s); they expire with the lease",
                        self.worker_id, error)  # fmt: skip
