"""The shared declaration of sharded queues (SPEC.md 11.2): ``dothis.shards``, a hash of logical
queue name -> shard count, written by whoever declares the queue first and checked by every
producer and worker of it.

Each command stands alone (the hash lives in a slot of its own on a cluster, so it is never in a
script's KEYS). A refused command (an ACL user without access to the hash) skips the check.
"""

from __future__ import annotations

import contextlib
from typing import cast

import redis

from dothis.store.connection import AsyncClient, SyncClient
from dothis.wire.shards import SHARDS_REGISTRY, Shards, mismatch


def _check(shards: Shards, raw: object) -> None:
    if raw is None:
        return
    try:
        declared = int(raw)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return  # not a count: written by hand; the queue's own keys are still right
    if declared != shards.count:
        raise mismatch(shards.name, declared, shards.count)


def declare(client: SyncClient, shards: Shards) -> None:
    """Declare ``shards`` unless it is declared already; ShardMismatch when it was declared with
    another count."""
    with contextlib.suppress(redis.exceptions.ResponseError):
        client.hsetnx(SHARDS_REGISTRY, shards.name, str(shards.count))
    try:
        raw = client.hget(SHARDS_REGISTRY, shards.name)
    except redis.exceptions.ResponseError:
        return
    _check(shards, raw)


async def declare_async(client: AsyncClient, shards: Shards) -> None:
    """``declare`` for a worker's asyncio client."""
    with contextlib.suppress(redis.exceptions.ResponseError):
        await client.hsetnx(SHARDS_REGISTRY, shards.name, str(shards.count))
    try:
        raw = await client.hget(SHARDS_REGISTRY, shards.name)
    except redis.exceptions.ResponseError:
        return
    _check(shards, raw)


def declared(client: SyncClient) -> dict[str, int]:
    """Every declared sharded queue and its count; empty when the hash is refused."""
    try:
        raw = cast(dict[bytes, bytes], client.hgetall(SHARDS_REGISTRY))
    except redis.exceptions.ResponseError:
        return {}
    counts = {}
    for name, count in raw.items():
        with contextlib.suppress(ValueError, UnicodeDecodeError):
            counts[name.decode()] = int(count)
    return counts


def declared_count(client: SyncClient, name: str) -> int | None:
    """The declared shard count of ``name``, or None (not declared, or refused)."""
    try:
        raw = client.hget(SHARDS_REGISTRY, name)
    except redis.exceptions.ResponseError:
        return None
    try:
        return int(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None
