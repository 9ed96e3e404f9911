"""Redis Cluster: hash-tagged queues keep every key in one slot; a worker serves queues on
different nodes; an untagged queue is refused at start with the fix (docs/topology.md)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
import redis
from redis.cluster import RedisCluster
from support import WorkerProcess, wait_until

from dothis import Queue
from dothis.errors import InvalidArguments, InvalidUrl
from dothis.store.connection import connect
from topology.servers import Cluster

pytestmark = pytest.mark.integration


def tagged_on_two_nodes(cluster: Cluster) -> tuple[str, str]:
    """Two hash-tagged queue names whose slots live on different masters."""
    client = RedisCluster(host="127.0.0.1", port=cluster.nodes[0].port)
    try:
        names: dict[str, str] = {}
        while len(names) < 2:
            name = f"{{t{uuid.uuid4().hex[:8]}}}"
            node = client.get_node_from_key(f"{name}:pending").name
            names.setdefault(node, name)
        first, second = names.values()
        return first, second
    finally:
        client.close()


def test_worker_serves_queues_on_two_nodes(cluster: Cluster) -> None:
    first, second = tagged_on_two_nodes(cluster)
    worker = WorkerProcess(cluster.url, first, "--cluster", "--queue", second)
    try:
        with Queue(first, cluster.url, cluster=True) as one, \
                Queue(second, cluster.url, cluster=True) as two:  # fmt: skip
            tasks = [one.enqueue("add", a=1, b=i) for i in range(5)]
            tasks += two.enqueue_many([("echo", {"text": f"t{i}"}) for i in range(5)])
            values = [task.wait(timeout=15) for task in tasks]
    finally:
        worker.stop()
    assert values == [1, 2, 3, 4, 5, "t0", "t1", "t2", "t3", "t4"]
    assert "Traceback" not in worker.output()
    assert "no connected replica" in worker.output()  # this cluster has no replicas


def test_every_key_of_a_tagged_queue_is_in_one_slot(cluster: Cluster) -> None:
    name, _ = tagged_on_two_nodes(cluster)
    worker = WorkerProcess(cluster.url, name, "--cluster")
    try:
        with Queue(name, cluster.url, cluster=True) as queue:
            parent = queue.enqueue("echo", text="parent")
            queue.enqueue("echo", text="child", depends_on=parent).wait(timeout=15)
            queue.enqueue("echo", text="later", delay=0.2).wait(timeout=15)
    finally:
        worker.stop()
    client = connect(f"{cluster.url}?cluster=1")
    try:
        keys = [key.decode() for key in client.scan_iter(match=f"{name}*")]
        slots = {client.keyslot(key) for key in keys}  # type: ignore[attr-defined]
    finally:
        client.close()
    assert len(keys) >= 5 and len(slots) == 1, keys


def test_untagged_queue_is_refused_at_start(cluster: Cluster) -> None:
    with pytest.raises(InvalidArguments, match=r"\{emails\}"):
        Queue("emails", cluster.url, cluster=True)
    worker = WorkerProcess(cluster.url, "emails", "--cluster")
    assert worker.wait(timeout=20) == 2, worker.output()  # a usage error: the --queue value
    assert "queue name(s) emails carry no hash tag" in worker.output()
    assert "{emails}" in worker.output() and "Traceback" not in worker.output()


def test_cluster_node_without_cluster_mode_is_refused(cluster: Cluster) -> None:
    worker = WorkerProcess(cluster.url, "{emails}")
    assert worker.wait(timeout=20) == 1
    assert "is a node of a Redis Cluster: pass --cluster" in worker.output()
    with pytest.raises(InvalidUrl):
        Queue("{x}", "redis+sentinel://127.0.0.1:1/primary?cluster=1")


def test_cli_enqueue_wait_on_the_cluster(cluster: Cluster) -> None:
    name, _ = tagged_on_two_nodes(cluster)
    worker = WorkerProcess(cluster.url, name, "--cluster")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "dothis", "enqueue", "--url", cluster.url, "--queue", name,
             "echo", "-a", "text=clustered", "--wait", "--timeout", "15"],
            capture_output=True, text=True, timeout=30, check=False,
            env={**os.environ, "DOTHIS_CLUSTER": "1"},
        )  # fmt: skip
    finally:
        worker.stop()
    assert done.returncode == 0, done.stderr
    assert '"clustered"' in done.stdout


def test_redis_cli_dash_c_enqueue(cluster: Cluster) -> None:
    """SPEC.md 11.1: a person at redis-cli enqueues on a cluster with -c and a tagged name."""
    name, _ = tagged_on_two_nodes(cluster)
    task = str(uuid.uuid4())
    port = str(cluster.nodes[0].port)
    hset = ["HSET", f"{name}:task:{task}", "function", "echo", "state", "pending", "args",
            '{"text": "by hand"}']  # fmt: skip
    for command in (hset, ["LPUSH", f"{name}:pending", task]):
        subprocess.run(["redis-cli", "-c", "-p", port, *command], check=True,
                       capture_output=True, timeout=10)  # fmt: skip
    worker = WorkerProcess(cluster.url, name, "--cluster")
    try:
        client = RedisCluster(host="127.0.0.1", port=cluster.nodes[0].port, decode_responses=True)
        wait_until(lambda: client.hget(f"{name}:task:{task}", "result") == "successful", 15)
        assert client.hget(f"{name}:task:{task}", "result-value") == '"by hand"'
        client.close()
    finally:
        worker.stop()


def test_results_channel_reaches_subscribers_on_any_node(cluster: Cluster) -> None:
    """The PUBLISH that finish.lua makes on the queue's node reaches a subscriber of another
    node (classic pub/sub is cluster-wide): what the producer's results listener relies on."""
    name, _ = tagged_on_two_nodes(cluster)
    client = RedisCluster(host="127.0.0.1", port=cluster.nodes[0].port)
    owner = client.get_node_from_key(f"{name}:pending").port
    client.close()
    other = next(node.port for node in cluster.nodes if node.port != owner)
    subscriber = redis.Redis(port=other, protocol=2).pubsub()
    subscriber.subscribe(f"{name}:results")
    worker = WorkerProcess(cluster.url, name, "--cluster")
    try:
        with Queue(name, f"redis://127.0.0.1:{other}/0", cluster=True) as queue:
            task = queue.enqueue("add", a=20, b=22)
            assert task.wait(timeout=15) == 42
        message = wait_until(
            lambda: subscriber.get_message(ignore_subscribe_messages=True, timeout=0.1), 10
        )
    finally:
        worker.stop()
        subscriber.close()
    assert task.id.encode() in message["data"]
