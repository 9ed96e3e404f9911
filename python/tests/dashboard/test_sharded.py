"""A sharded queue on the dashboard (SPEC.md 11.2): one row with the counts of its shards added
up, its shards not listed on their own, and its task lists read shard by shard."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from dothis import Queue
from dothis.producer.sharded import ShardedQueue
from dothis.wire.shards import SHARDS_REGISTRY, shard_name, shard_of

pytestmark = pytest.mark.integration


@pytest.fixture
def sharded(url: str, r: redis.Redis) -> Iterator[ShardedQueue]:
    name = f"d{uuid.uuid4().hex[:10]}"
    with Queue(name, url, shards=3) as queue:
        assert isinstance(queue, ShardedQueue)
        yield queue
    r.hdel(SHARDS_REGISTRY, name)


def test_one_row_with_summed_counts(make_client: Any, sharded: ShardedQueue) -> None:
    sharded.enqueue_many([("echo", {"text": i}) for i in range(12)])
    name = sharded.name
    client = make_client()
    rows = client.get("/api/queues").json()["queues"]
    mine = [row for row in rows if name in row["queue"]]
    assert [row["queue"] for row in mine] == [name]  # the shards are not rows of their own
    assert mine[0]["shards"] == 3 and mine[0]["counts"]["pending"] == 12
    assert mine[0]["backlog"] == [{"function": "echo", "pending": 12, "served": False}]
    assert client.get("/api/counts").json()["queues"][name]["pending"] == 12
    page = client.get("/")
    assert page.status_code == 200
    assert "(3 shards)" in page.text and f'data-count="{name}|pending">12<' in page.text
    assert shard_name(name, 0) not in page.text


def test_task_lists_page_through_each_shard(make_client: Any, sharded: ShardedQueue) -> None:
    ids = [task.id for task in sharded.enqueue_many([("echo", {"text": i}) for i in range(12)])]
    name = sharded.name
    per_shard = Counter(shard_of(task_id, 3) for task_id in ids)
    client = make_client()
    seen = []
    for shard in range(3):
        found = client.get("/api/tasks", params={"queue": name, "shard": shard}).json()
        assert found["queue"] == shard_name(name, shard)
        assert found["sharded"] == {"name": name, "shard": shard, "count": 3}
        assert found["total"] == per_shard[shard]
        seen += [row["id"] for row in found["rows"]]
    assert sorted(seen) == sorted(ids)
    page = client.get("/tasks", params={"queue": name, "shard": 1, "state": "pending"})
    assert page.status_code == 200
    assert "(3 shards)" in page.text and "shard 2</a>" in page.text
    assert "shard=2&amp;state=pending" in page.text
    one = ids[5]
    assert one in client.get("/tasks", params={"queue": name, "shard": shard_of(one, 3)}).text
    task = client.get("/api/task", params={"queue": name, "id": one}).json()
    assert task["id"] == one and task["queue"] == shard_name(name, shard_of(one, 3))
    search = client.get("/api/search", params={"queue": name, "function": "echo"}).json()
    assert search["found"] == 12
    refused = client.get("/api/tasks", params={"queue": name, "shard": 3})
    assert refused.status_code == 400 and "shards 0 to 2" in refused.json()["error"]
