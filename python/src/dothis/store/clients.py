"""Clients of a primary found through Sentinel and of a Redis Cluster, built from a parsed URL
(store/topology.py) with the connection settings of store/connection.py.

A Sentinel client asks the sentinels for the primary's address whenever it opens a connection;
a connection that meets READONLY (its server became a replica in a failover) is closed and raises
ConnectionError, so every caller sees a failover as a lost connection and retries, never as a
refusal of its task. Cluster clients route each call to the node of its keys' slot.
"""

from __future__ import annotations

from functools import partial
from typing import Any, cast

import redis
import redis.asyncio as aioredis
import redis.asyncio.cluster
import redis.asyncio.sentinel
import redis.cluster
import redis.sentinel

from dothis.store.resources import lua_source
from dothis.store.scripts import NAMES
from dothis.store.topology import Target


def _sentinel_settings(target: Target, options: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    """(the sentinels' own connection settings, the primary's)."""
    tls = {"ssl": True, **target.tls} if target.uses_tls else {}
    own = {"socket_timeout": options["socket_connect_timeout"],
           "socket_connect_timeout": options["socket_connect_timeout"], **tls}  # fmt: skip
    primary = {**options, "db": target.db, "username": target.username,
               "password": target.password, **({"ssl": True} if tls else {})}  # fmt: skip
    return own, primary


def sentinel_sync(target: Target, options: dict[str, Any]) -> redis.Redis:
    own, primary = _sentinel_settings(target, options)
    sentinel = cast(Any, redis.sentinel.Sentinel)(list(target.sentinels), sentinel_kwargs=own)
    return cast(redis.Redis, sentinel.master_for(target.service, redis_class=redis.Redis,
                                                 **primary))  # fmt: skip


def sentinel_async(target: Target, options: dict[str, Any]) -> aioredis.Redis:
    own, primary = _sentinel_settings(target, options)
    make = cast(Any, redis.asyncio.sentinel.Sentinel)
    sentinel = make(list(target.sentinels), sentinel_kwargs=own)
    return cast(aioredis.Redis, sentinel.master_for(target.service, redis_class=aioredis.Redis,
                                                    **primary))  # fmt: skip


# Commands without keys that dothis sends raw (the worker's start checks): one node answers, as
# redis-py routes TIME and CONFIG GET; redis-py does not know where to send ROLE otherwise.
_KEYLESS = ("ROLE",)


def cluster_sync(target: Target, options: dict[str, Any]) -> redis.Redis:
    """Connects at once (redis-py reads the slots map here), and loads the protocol's scripts
    on every primary: redis-py refuses EVALSHA in a cluster pipeline, which cannot load a script
    on NOSCRIPT, so dothis's pipelines (enqueue_many) send EVALSHA as a raw command instead."""
    client = redis.cluster.RedisCluster.from_url(target.url, **options)
    for command in _KEYLESS:
        client.command_flags[command] = client.DEFAULT_NODE
    for name in NAMES:
        client.script_load(lua_source(name))
    make = cast(Any, client.pipeline)

    def pipeline(*args: Any, **kwargs: Any) -> Any:
        pipe = make(*args, **kwargs)
        pipe.evalsha = partial(pipe.execute_command, "EVALSHA")
        return pipe

    client.pipeline = pipeline  # type: ignore[method-assign]
    return cast(redis.Redis, client)


def cluster_async(target: Target, options: dict[str, Any]) -> aioredis.Redis:
    """Connects at its first call."""
    client = redis.asyncio.cluster.RedisCluster.from_url(target.url, **options)
    for command in _KEYLESS:
        client.command_flags[command] = client.DEFAULT_NODE
    return cast(aioredis.Redis, client)


def replication_warning(client: redis.Redis, target: Target) -> str | None:
    """What a worker should warn about once at start: acknowledged writes that a failover can
    lose (docs/topology.md). None when there is nothing to say, or Redis will not tell."""
    try:
        info = client.info("replication")
        config = cast(dict[Any, Any], client.config_get("min-replicas-to-write"))
    except (redis.RedisError, OSError):
        return None  # INFO or CONFIG disabled (a hosted Redis): nothing to check
    replicas = int(info.get("connected_slaves", 0))
    raw = config.get(b"min-replicas-to-write", config.get("min-replicas-to-write", 0))
    minimum = int(raw or 0)
    if replicas and not minimum:
        return (
            f"the primary has {replicas} replica(s) but min-replicas-to-write 0: a write it "
            "acknowledged may not have reached a replica when a failover happens, and is then "
            "lost; set min-replicas-to-write 1 (and min-replicas-max-lag) on the primary, or "
            "have producers WAIT for a replica (docs/topology.md)"
        )
    if not replicas and (target.sentinels or target.cluster):
        return (
            "the primary has no connected replica: nothing written is replicated, and a failover "
            "loses every write since the replica left; check the replicas (INFO replication)"
        )
    return None


def primaries(client: redis.Redis, target: Target) -> list[redis.Redis]:
    """A client per primary: the cluster's masters, else the client itself."""
    if not target.cluster:
        return [client]
    cluster = cast(redis.cluster.RedisCluster, client)
    nodes = cast(Any, cluster).get_primaries()
    return [cluster.get_redis_connection(node) for node in nodes]


def is_cluster_node(client: redis.Redis) -> bool:
    """Whether the server runs in cluster mode (False when INFO is refused)."""
    try:
        info = client.info("cluster")
    except redis.ResponseError:
        return False
    return bool(int(info.get("cluster_enabled", 0)))
