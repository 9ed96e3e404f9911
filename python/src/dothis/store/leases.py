"""Worker keys (SPEC.md 9.1, 9.2): a worker's lease is its key's existence, renewed by heartbeats.

One place writes them, for the asyncio worker and the synchronous consumers (eager mode, retask).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dothis.store.connection import AsyncClient, SyncClient
from dothis.wire.clock import now_iso


def _register(pipe: Any, key: str, fields: Mapping[str, str], lease_ms: int) -> None:
    pipe.hset(key, mapping=dict(fields))
    pipe.pexpire(key, lease_ms)


def _beat(pipe: Any, key: str, lease_ms: int) -> None:
    pipe.hset(key, "heartbeat", now_iso())
    pipe.pexpire(key, lease_ms)


def register(client: SyncClient, key: str, fields: Mapping[str, str], lease_ms: int) -> None:
    pipe = client.pipeline(transaction=True)
    _register(pipe, key, fields, lease_ms)
    pipe.execute()


def heartbeat(client: SyncClient, key: str, lease_ms: int) -> bool:
    """Renew the lease; False when the key had expired (it is then only a heartbeat field)."""
    pipe = client.pipeline(transaction=True)
    _beat(pipe, key, lease_ms)
    added, _ = pipe.execute()
    return not added


async def register_async(
    client: AsyncClient, key: str, fields: Mapping[str, str], lease_ms: int
) -> None:
    pipe = client.pipeline(transaction=True)
    _register(pipe, key, fields, lease_ms)
    await pipe.execute()


async def heartbeat_async(client: AsyncClient, key: str, lease_ms: int) -> bool:
    """Renew the lease; False when the key had expired (the caller registers again)."""
    pipe = client.pipeline(transaction=True)
    _beat(pipe, key, lease_ms)
    added, _ = await pipe.execute()
    return not added
