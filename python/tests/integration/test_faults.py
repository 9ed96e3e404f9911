"""Redis faults are read in one line and never fail a task: a replica, OOM, READONLY."""

from __future__ import annotations

import pytest
import redis
from support import RedisServer

from dothis import ReadOnlyRedis, Worker, WorkerOptions
from dothis.store.faults import describe

pytestmark = pytest.mark.integration


def test_a_worker_pointed_at_a_replica_says_so(redis_server, queue_name) -> None:
    replica = RedisServer("--replicaof", "127.0.0.1", str(redis_server.port))
    try:
        with pytest.raises(ReadOnlyRedis) as raised:
            Worker(queue_name, replica.url, options=WorkerOptions(pool="inline")).run()
        assert "read-only replica" in str(raised.value) and "primary" in str(raised.value)
        assert raised.value.code == "read-only-redis"
    finally:
        replica.stop()


@pytest.mark.parametrize(
    ("reply", "meaning"),
    [("READONLY You can't write against a read only replica.", "read-only replica"),
     ("OOM command not allowed when used memory > 'maxmemory'.", "out of memory"),
     ("WRONGTYPE Operation against a key holding the wrong kind of value", "wrong type"),
     ("LOADING Redis is loading the dataset in memory", "loading")],
)  # fmt: skip
def test_redis_refusals_are_described(reply: str, meaning: str) -> None:
    assert meaning in describe(redis.ResponseError(reply))


@pytest.mark.parametrize(
    ("error", "meaning"),
    [(redis.exceptions.ReadOnlyError("You can't write against a read only replica."),
      "read-only replica"),
     (redis.exceptions.OutOfMemoryError("command not allowed when used memory > 'maxmemory'."),
      "out of memory")],
)  # fmt: skip
def test_redis_py_error_classes_are_described(error: Exception, meaning: str) -> None:
    """redis-py drops the READONLY / OOM code from these messages; the class tells."""
    assert meaning in describe(error)
