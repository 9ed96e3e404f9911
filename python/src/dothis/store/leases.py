"""Worker keys (SPEC.md 9.1, 9.2): a worker's lease is its key's existence, renewed by heartbeats.

One place writes them, for the asyncio worker and the synchronous consumers (eager mode, retask).
Given a ``Listing``, every write of the key also lists the worker in ``<queue>:workers`` scored by
the key's expiry (ms since the epoch), and ``leave`` takes both away: readers such as ``dothis
info`` find a queue's workers there, never by SCAN over key patterns.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio.client
import redis.client
import redis.exceptions

from dothis.store.connection import SyncClient
from dothis.wire.clock import now_iso, now_ms
from dothis.wire.protocol import QUEUES_REGISTRY

Pipe = redis.client.Pipeline | redis.asyncio.client.Pipeline


@dataclass(frozen=True)
class Listing:
    """A worker's entry in its queue's registry of workers (SPEC.md 9.1): ``registry`` is the
    key ``<queue>:workers`` (``Keys.workers``), ``worker_id`` the member."""

    registry: str
    worker_id: str


def _list(pipe: Pipe, listing: Listing | None, lease_ms: int, *, prune: bool = False) -> None:
    """ZADD the worker with its key's expiry as the score (same clock as ``now_ms``); when
    ``prune``, first drop the ids whose keys expired over a lease ago (workers that died)."""
    if listing is None:
        return
    now = now_ms()
    if prune:
        pipe.zremrangebyscore(listing.registry, "-inf", f"({now - lease_ms}")
    pipe.zadd(listing.registry, {listing.worker_id: now + lease_ms})


def _register(
    pipe: Pipe, key: str, fields: Mapping[str, str], lease_ms: int, listing: Listing | None
) -> None:
    pipe.hset(key, mapping=cast(Mapping[Any, Any], fields))
    pipe.pexpire(key, lease_ms)
    _list(pipe, listing, lease_ms, prune=True)


def _beat(
    pipe: Pipe, key: str, lease_ms: int, listing: Listing | None, extra: Mapping[str, str]
) -> None:
    pipe.hset(key, "heartbeat", now_iso())
    pipe.hexists(key, "id")  # the key is whole (a beat applied late may have re-made it bare)
    if extra:
        pipe.hset(key, mapping=cast(Mapping[Any, Any], extra))
    pipe.pexpire(key, lease_ms)
    _list(pipe, listing, lease_ms)


def _leave(pipe: Pipe, key: str, listing: Listing) -> None:
    pipe.delete(key)
    pipe.zrem(listing.registry, listing.worker_id)


def register(
    client: SyncClient,
    key: str,
    fields: Mapping[str, str],
    lease_ms: int,
    listing: Listing | None = None,
) -> None:
    """Write the worker key with its TTL (and, given ``listing``, list the worker), atomically."""
    pipe = client.pipeline(transaction=True)
    _register(pipe, key, fields, lease_ms, listing)
    pipe.execute()


def heartbeat(
    client: SyncClient,
    key: str,
    lease_ms: int,
    listing: Listing | None = None,
    extra: Mapping[str, str] | None = None,
) -> bool:
    """Renew the lease (and the listing's score), writing the ``extra`` fields too; False when the
    key had expired (it then holds only what this wrote: the caller registers again).

    The key counts as expired whenever it has no ``id``: a beat whose reply was lost (Redis
    paused past the socket timeout, a partition) may still be applied once Redis answers again,
    after the key expired, and re-make it with its heartbeat alone. Such a key would pass for a
    live worker while saying nothing of its task leases, and tasks whose leases ran out (a take
    whose reply was lost) would never be recovered."""
    pipe = client.pipeline(transaction=True)
    _beat(pipe, key, lease_ms, listing, extra or {})
    replies = pipe.execute()
    return bool(replies[1])


def leave(client: SyncClient, key: str, listing: Listing) -> None:
    """A worker that stops: its key deleted and its id out of the registry, atomically."""
    pipe = client.pipeline(transaction=True)
    _leave(pipe, key, listing)
    pipe.execute()


def note_queues(client: SyncClient, queues: list[str]) -> None:
    """List the queues in the registry of queues (SPEC.md 2.3), scored now. Informative: a write
    refused (an ACL user without access to it) is ignored."""
    if not queues:
        return
    now = now_ms()
    with contextlib.suppress(redis.exceptions.ResponseError):
        client.zadd(QUEUES_REGISTRY, {queue: now for queue in queues})
