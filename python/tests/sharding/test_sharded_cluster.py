"""A sharded queue on a three-master Redis Cluster (SPEC.md 11.2): its shards live on more than one
node, and one worker serving every shard drains them all."""

from __future__ import annotations

import uuid

import pytest
from redis.cluster import RedisCluster
from support import WorkerProcess, wait_until
from topology.servers import Cluster

from dothis import Queue
from dothis.producer.sharded import ShardedQueue
from dothis.wire.shards import Shards

pytestmark = pytest.mark.integration

SHARDS = 3


def spread_name(cluster: Cluster) -> tuple[str, set[str]]:
    """A logical name whose shards' slots live on more than one master, and those masters."""
    client = RedisCluster(host="127.0.0.1", port=cluster.nodes[0].port)
    try:
        while True:
            name = f"s{uuid.uuid4().hex[:8]}"
            nodes = {client.get_node_from_key(f"{part}:pending").name
                     for part in Shards(name, SHARDS).names}  # fmt: skip
            if len(nodes) > 1:
                return name, nodes
    finally:
        client.close()


def test_shards_spread_over_nodes_and_drain(cluster: Cluster) -> None:
    name, nodes = spread_name(cluster)
    with Queue(name, cluster.url, cluster=True, shards=SHARDS) as queue:
        assert isinstance(queue, ShardedQueue)
        tasks = queue.enqueue_many([("add", {"a": i, "b": 1}) for i in range(60)])
        assert len(queue) == 60
        assert all(len(part) > 0 for part in queue.parts)
        worker = WorkerProcess(cluster.url, name, "--cluster", "--shards", str(SHARDS),
                               "--pool", "inline", "--concurrency", "4")  # fmt: skip
        try:
            wait_until(lambda: len(queue.succeeded(0, 100)) == 60, timeout=30)
            assert [task.wait(timeout=5) for task in tasks[:3]] == [1, 2, 3]
            assert len(queue) == 0
        finally:
            worker.stop()
    assert len(nodes) > 1
    assert "Traceback" not in worker.output()
