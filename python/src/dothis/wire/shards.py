"""One logical queue over many shards (SPEC.md 11.2): the shard names, the shard of a task id and
the shared declaration of the shard count.

A logical queue ``emails`` with N shards is N ordinary queues ``{emails.0}`` ... ``{emails.N-1}``.
A task lives in shard ``crc32(id) mod N`` (CRC-32 as zlib computes it, of the id's UTF-8 bytes), so
every party finds a task from its id alone.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from dothis.errors import InvalidArguments
from dothis.wire.protocol import QUEUE_MAX_BYTES, check_name

SHARDS_REGISTRY = "dothis.shards"
MAX_SHARDS = 1024


class ShardMismatch(InvalidArguments):
    """A party is configured with a shard count other than the one declared in dothis.shards."""


def shard_of(task_id: str, count: int) -> int:
    """The shard of ``task_id`` in a queue of ``count`` shards: CRC-32 (IEEE, as zlib) of its
    UTF-8 bytes, modulo ``count``."""
    return zlib.crc32(task_id.encode("utf-8")) % count


def shard_name(logical: str, index: int) -> str:
    """The queue name of shard ``index``: ``{<logical>.<index>}``, hash-tagged so that the
    shards of one queue spread over the slots of a cluster."""
    return f"{{{logical}.{index}}}"


@dataclass(frozen=True)
class Shards:
    """A logical queue of ``count`` shards, as a worker's queue: ``Shards("emails", 4)``."""

    name: str
    count: int

    def __post_init__(self) -> None:
        check_logical(self.name, self.count)

    @property
    def names(self) -> list[str]:
        return [shard_name(self.name, index) for index in range(self.count)]

    def of(self, task_id: str) -> str:
        """The queue name of the shard ``task_id`` lives in."""
        return shard_name(self.name, shard_of(task_id, self.count))


def check_logical(name: str, count: int) -> None:
    """InvalidArguments unless ``name`` can be a sharded queue's name and ``count`` a count."""
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_SHARDS:
        raise InvalidArguments(f"shards must be an int from 1 to {MAX_SHARDS}, not {count!r}")
    try:
        check_name(name, "queue name", QUEUE_MAX_BYTES - 8)
    except ValueError as error:
        raise InvalidArguments(str(error)) from error
    if "{" in name or "}" in name or ":" in name:
        raise InvalidArguments(
            f"sharded queue name {name!r} holds '{{', '}}' or ':'; give the plain name (emails): "
            "each shard gets its own hash tag, {emails.0} ... (SPEC.md 11.2)"
        )


def expand(queues: Sequence[str | Shards], shards: int | None) -> list[str | Shards]:
    """A worker's queue list with ``shards`` applied to every plain name (``--shards N``)."""
    if shards is None:
        return list(queues)
    return [Shards(item, shards) if isinstance(item, str) else item for item in queues]


def mismatch(name: str, declared: int, configured: int) -> ShardMismatch:
    return ShardMismatch(
        f"queue {name!r} is declared with {declared} shard(s) in {SHARDS_REGISTRY}, but this "
        f"client was given {configured}: configure every producer and worker of the queue with "
        f"shards={declared}, or, once the queue is empty, HDEL {SHARDS_REGISTRY} {name} to "
        "declare it anew (SPEC.md 11.2)"
    )


def groups(served: Sequence[str | Shards]) -> list[list[str]]:
    """The queue names a worker serves, one group per item (a plain queue alone, a sharded
    queue's shards together), each name once."""
    seen: set[str] = set()
    result = []
    for item in served:
        names = item.names if isinstance(item, Shards) else [item]
        fresh = [name for name in names if name not in seen]
        seen.update(fresh)
        if fresh:
            result.append(fresh)
    return result
