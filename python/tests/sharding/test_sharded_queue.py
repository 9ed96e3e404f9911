"""One logical queue over many shards on one Redis (SPEC.md 11.2): the id -> shard rule, spreading,
draining by a worker serving every shard, fetch / cancel / wait by id, dependencies within a
shard, and a shard count other than the declared one refused."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator

import pytest
import redis
from click.testing import CliRunner
from support import WorkerProcess, WorkerThread, wait_until

from dothis import Queue, Registry, Worker, WorkerOptions
from dothis.cli import main
from dothis.cli.status import gather
from dothis.errors import DothisError, InvalidArguments
from dothis.producer.sharded import ShardedQueue
from dothis.wire.shards import SHARDS_REGISTRY, ShardMismatch, Shards, shard_name, shard_of
from dothis.worker.claims import Claimer
from dothis.worker.prefetch import Prefetch

pytestmark = pytest.mark.integration

# CRC-32 (zlib) of the id's UTF-8 bytes, mod N: the same vectors as the Node test and SPEC.md.
VECTORS = [("11111111-2222-2222-2222-333333333333", 4, 0), ("a", 4, 3), ("emails-1", 8, 7),
           ("héllo", 3, 2)]  # fmt: skip


def worker(queue: str | Shards, url: str, shards: int | None = None) -> WorkerThread:
    """A worker in this process that runs ``echo``."""
    registry = Registry()
    registry.add(lambda text: text, name="echo")
    options = WorkerOptions(pool="inline", block_seconds=0.5)
    return WorkerThread(Worker(queue, url, registry=registry, shards=shards, options=options))


@pytest.fixture
def name() -> str:
    return f"s{uuid.uuid4().hex[:10]}"


@pytest.fixture
def sharded(url: str, name: str, r: redis.Redis) -> Iterator[ShardedQueue]:
    with Queue(name, url, shards=4) as queue:
        assert isinstance(queue, ShardedQueue)
        yield queue
    r.hdel(SHARDS_REGISTRY, name)


def test_the_shard_of_an_id() -> None:
    assert [shard_of(task_id, count) for task_id, count, _ in VECTORS] == [
        shard for _, _, shard in VECTORS
    ]
    assert Shards("emails", 3).names == ["{emails.0}", "{emails.1}", "{emails.2}"]
    with pytest.raises(InvalidArguments, match="plain name"):
        Shards("{emails}", 2)
    with pytest.raises(InvalidArguments, match="shards must be"):
        Shards("emails", 0)


def test_claims_rotate_over_the_shards_of_a_group() -> None:
    lanes = [object() for _ in range(4)]
    claimer = Claimer(None, None, lanes, 1, Prefetch(0, 1), 1.0, "",  # type: ignore[arg-type]
                      groups=[1, 3])  # fmt: skip
    first = [lanes.index(lane) for lane in claimer.order()]
    second = [lanes.index(lane) for lane in claimer.order()]
    third = [lanes.index(lane) for lane in claimer.order()]
    assert (first, second, third) == ([0, 1, 2, 3], [0, 2, 3, 1], [0, 3, 1, 2])


def test_tasks_spread_and_a_worker_drains_every_shard(
    sharded: ShardedQueue, url: str, name: str, r: redis.Redis
) -> None:
    tasks = sharded.enqueue_many([("echo", {"text": i}) for i in range(200)])
    counts = [r.llen(f"{shard_name(name, index)}:pending") for index in range(4)]
    assert all(count > 0 for count in counts) and sum(counts) == 200 == len(sharded), counts
    for task in tasks:  # each in the shard of its id, found there by a plain queue
        assert task.queue.name == shard_name(name, shard_of(task.id, 4))
    assert r.hget(SHARDS_REGISTRY, name) == b"4"
    worker = WorkerProcess(url, name, "--shards", "4", "--concurrency", "4", "--pool", "inline")
    try:
        wait_until(lambda: sum(len(part.succeeded(0, 300)) for part in sharded.parts) == 200,
                   timeout=30)  # fmt: skip
        assert tasks[7].wait(timeout=5) == 7 and len(sharded) == 0
        assert len(sharded.succeeded(0, 500)) == 200
        reports = gather(url, ())  # a sharded queue is one row, summed over its shards
        report = next(item for item in reports if item["queue"] == name)
        assert report["succeeded"] == 200 and report["shards"] == 4
        assert not any(item["queue"].startswith(f"{{{name}.") for item in reports)
    finally:
        worker.stop()
    assert "Traceback" not in worker.output()


def test_fetch_cancel_and_wait_by_id(sharded: ShardedQueue, url: str, name: str) -> None:
    later = sharded.enqueue("echo", text="later", delay=60)
    fetched = sharded.fetch(later.id)
    assert fetched is not None and fetched.queue.name == shard_name(name, shard_of(later.id, 4))
    assert [task.id for task in sharded.scheduled()] == [later.id]
    assert sharded.cancel(later.id) == "cancelled"
    assert [task.id for task in sharded.failed()] == [later.id]
    assert sharded.fetch("no-such-task") is None
    thread = worker(Shards(name, 4), url)
    try:
        now = sharded.enqueue("echo", text="now", task_id="custom-id")
        assert sharded.fetch("custom-id") == now
        assert now.wait(timeout=10) == "now"
        assert sharded.delete_task("custom-id") == "deleted"
        assert sharded.fetch("custom-id") is None
    finally:
        thread.stop()


def test_dependencies_stay_in_their_shard(sharded: ShardedQueue, url: str, name: str) -> None:
    parent = sharded.enqueue("echo", text="parent", delay=0.3)
    child = sharded.enqueue("echo", text="child", depends_on=parent)
    assert shard_of(child.id, 4) == shard_of(parent.id, 4)
    assert child.state == "waiting"
    other = next(f"id-{i}" for i in range(100) if shard_of(f"id-{i}", 4) != shard_of(parent.id, 4))
    with pytest.raises(InvalidArguments, match="share one shard"):
        sharded.enqueue("echo", text="x", task_id=other, depends_on=parent)
    stranger = sharded.enqueue("echo", text="x", task_id=other)
    with pytest.raises(InvalidArguments, match="different shards"):
        sharded.enqueue("echo", text="x", depends_on=[parent, stranger])
    thread = worker(name, url, shards=4)
    try:
        assert child.wait(timeout=15) == "child"
        assert parent.result == "parent"
    finally:
        thread.stop()


def test_another_shard_count_is_refused(sharded: ShardedQueue, url: str, name: str) -> None:
    sharded.enqueue("echo", text="declares the count")
    with Queue(name, url, shards=3) as wrong, pytest.raises(ShardMismatch, match="shards=4"):
        wrong.enqueue("echo", text="refused")
    assert issubclass(ShardMismatch, DothisError)
    worker = WorkerProcess(url, name, "--shards", "2")
    try:
        assert worker.wait(timeout=20) != 0
    finally:
        worker.stop()
    assert "declared with 4 shard(s)" in worker.output(), worker.output()
    assert "Traceback" not in worker.output()


def test_a_worker_that_dies_is_recovered_in_its_shard(
    sharded: ShardedQueue, url: str, name: str, r: redis.Redis
) -> None:
    timing = ("--shards", "4", "--lease-ms", "1000", "--heartbeat-ms", "300", "--reap-ms", "300")
    task = sharded.enqueue("add", a=1, b=2)
    doomed = WorkerProcess(url, name, *timing, "--worker-id", "doomed",
                           env={"DOTHIS_CRASH_AT": "started"})  # fmt: skip
    rescuer = None
    try:
        assert doomed.wait() == -signal.SIGKILL
        rescuer = WorkerProcess(url, name, *timing, "--worker-id", "rescuer")
        assert task.wait(timeout=20) == 3
    finally:
        doomed.stop()
        if rescuer is not None:
            rescuer.stop()
    assert r.hget(task.key, "claims") == b"2" and r.hget(task.key, "worker") == b"rescuer"
    assert r.llen(f"{task.queue.name}:executing") == 0


def test_a_plain_worker_serves_one_shard(sharded: ShardedQueue, url: str, name: str) -> None:
    tasks = sharded.enqueue_many([("echo", {"text": i}) for i in range(40)])
    shard = shard_name(name, shard_of(tasks[0].id, 4))
    mine = [task for task in tasks if task.queue.name == shard]
    thread = worker(shard, url)  # a worker that knows nothing of shards
    try:
        assert [task.wait(timeout=10) for task in mine] == [tasks.index(task) for task in mine]
    finally:
        thread.stop()
    assert len(sharded) == 40 - len(mine) and len(mine) < 40


def test_the_command_line_enqueues_into_a_shard_and_shows_one_row(
    sharded: ShardedQueue, url: str, name: str, r: redis.Redis
) -> None:
    env = {"DOTHIS_REDIS_URL": url, "COLUMNS": "200", "DOTHIS_CONFIG": None, "DOTHIS_QUEUE": None}
    enqueued = CliRunner().invoke(main, ["enqueue", "--queue", name, "--shards", "4", "echo",
                                         "text=hi"], env=env)  # fmt: skip
    assert enqueued.exit_code == 0, enqueued.output
    task_id = enqueued.output.strip()
    assert r.exists(f"{shard_name(name, shard_of(task_id, 4))}:task:{task_id}")
    shown = CliRunner().invoke(main, ["info", "--queue", name], env=env)
    assert shown.exit_code == 0, shown.output
    assert f"{name} (4 shards)" in shown.output and "1 pending" in shown.output
    refused = CliRunner().invoke(main, ["enqueue", "--queue", name, "--shards", "2", "echo"],
                                 env=env)  # fmt: skip
    assert refused.exit_code != 0 and "declared with 4 shard(s)" in refused.output
