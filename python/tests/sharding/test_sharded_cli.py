"""The commands that list and change tasks on a sharded queue (SPEC.md 11.2): ``failed``,
``requeue``, ``cancel``, ``delete``, ``empty`` and ``purge`` act on every shard, with ``--shards N``
or the count the queue is declared with, and refuse another count."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
import redis
from click.testing import CliRunner, Result

from dothis import Queue
from dothis.cli import main
from dothis.producer.sharded import ShardedQueue
from dothis.wire.shards import SHARDS_REGISTRY, shard_of

pytestmark = pytest.mark.integration


@pytest.fixture
def name() -> str:
    return f"m{uuid.uuid4().hex[:10]}"


@pytest.fixture
def sharded(url: str, name: str, r: redis.Redis) -> Iterator[ShardedQueue]:
    with Queue(name, url, shards=3) as queue:
        assert isinstance(queue, ShardedQueue)
        yield queue
    r.hdel(SHARDS_REGISTRY, name)


def run(url: str, *args: str, answer: str | None = None) -> Result:
    env = {"DOTHIS_REDIS_URL": url, "COLUMNS": "200", "DOTHIS_CONFIG": None,
           "DOTHIS_QUEUE": None, "DOTHIS_SHARDS": None}  # fmt: skip
    return CliRunner().invoke(main, list(args), env=env, input=answer)


def test_cancel_failed_requeue_and_delete_reach_every_shard(
    sharded: ShardedQueue, url: str, name: str
) -> None:
    tasks = sharded.enqueue_many([("echo", {"text": i}) for i in range(12)])
    ids = [task.id for task in tasks]
    assert len({shard_of(task_id, 3) for task_id in ids}) == 3
    doomed = ids[:6]
    cancelled = run(url, "cancel", "--queue", name, *doomed)  # the declared count: 3
    assert cancelled.exit_code == 0, cancelled.output
    assert cancelled.output.count("cancelled") == 6, cancelled.output
    assert len(sharded) == 6
    listed = run(url, "failed", "--queue", name, "--shards", "3", "--json", "--count", "50")
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.output)
    assert sorted(row["id"] for row in rows) == sorted(doomed)
    assert {row["function"] for row in rows} == {"echo"}
    shown = run(url, "failed", "--queue", name)
    assert shown.exit_code == 0 and f"'{name}' (3 shards)" in shown.output, shown.output
    requeued = run(url, "requeue", "--queue", name, "--all")
    assert requeued.exit_code == 0, requeued.output
    assert requeued.output.count("requeued") == 6, requeued.output
    assert len(sharded) == 12 and sharded.failed() == []
    deleted = run(url, "delete", "--queue", name, ids[0], ids[7])
    assert deleted.exit_code == 0, deleted.output
    assert len(sharded) == 10 and sharded.fetch(ids[0]) is None


def test_empty_and_purge_every_shard(sharded: ShardedQueue, url: str, name: str) -> None:
    sharded.enqueue_many([("echo", {"text": i}) for i in range(9)])
    emptied = run(url, "empty", "--queue", name, "--yes")
    assert emptied.exit_code == 0, emptied.output
    assert "removed 9 pending task(s)" in emptied.output and len(sharded) == 0
    sharded.enqueue_many([("echo", {"text": i}) for i in range(5)])
    purged = run(url, "purge", "--queue", name, "--shards", "3", answer="y\n")
    assert purged.exit_code == 0, purged.output
    assert "5 pending" in purged.output and len(sharded) == 0


def test_another_shard_count_is_refused(sharded: ShardedQueue, url: str, name: str) -> None:
    (task,) = sharded.enqueue_many([("echo", {"text": "stay"})])
    for command in (["empty", "--yes"], ["cancel", task.id], ["failed"]):
        refused = run(url, command[0], "--queue", name, "--shards", "2", *command[1:])
        assert refused.exit_code != 0, refused.output
        assert "declared with 3 shard(s)" in refused.output and "given 2" in refused.output
    assert len(sharded) == 1
