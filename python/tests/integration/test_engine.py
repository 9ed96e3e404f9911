"""One engine for the worker, eager mode and the retask consumer: the bugs the rebuild fixed, each
with the test that failed before (against a real redis-server)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from click.testing import CliRunner
from support import RedisServer, WorkerThread

from dothis import (
    AuthenticationFailed,
    InvalidUrl,
    Queue,
    Registry,
    Retry,
    TaskFailed,
    Worker,
    WorkerOptions,
    set_always_eager,
    task,
)
from dothis.cli import main
from integration.test_producer import as_text, validator

pytestmark = pytest.mark.integration


def test_concurrency_is_one_limit_across_queues(url, queue_name, r) -> None:
    """--concurrency 2 --prefetch 10 on two queues runs at most 2 async tasks at once."""
    registry = Registry()
    seen = {"running": 0, "most": 0}

    async def hold() -> int:
        seen["running"] += 1
        seen["most"] = max(seen["most"], seen["running"])
        await asyncio.sleep(0.05)
        seen["running"] -= 1
        return seen["most"]

    registry.add(hold, name="hold")
    first, second = f"{queue_name}-a", f"{queue_name}-b"
    worker = WorkerThread(Worker([first, second], url, registry=registry, options=WorkerOptions(
        concurrency=2, prefetch=10, block_seconds=0.5)))  # fmt: skip
    try:
        with Queue(first, url) as a, Queue(second, url) as b:
            tasks = [a.enqueue("hold") for _ in range(10)] + [b.enqueue("hold") for _ in range(10)]
            for each in tasks:
                each.wait(timeout=20)
    finally:
        worker.stop()
    assert seen["most"] == 2


def test_eager_tasks_never_reach_the_pending_list(url, queue_name, r) -> None:
    registry = Registry()
    during: dict[str, object] = {}

    def look(name: str) -> str:
        during["pending"] = r.llen(f"{queue_name}:pending")
        during["executing"] = r.lrange(f"{queue_name}:executing", 0, -1)
        during["lease"] = as_text(r.hgetall(r.keys(f"{queue_name}:worker:*")[0]))
        return name

    registry.add(look, name="look")
    with Queue(queue_name, url, is_async=False, registry=registry) as eager:
        done = eager.enqueue("look", name="x", delay=3600)  # runs now all the same
        assert done.result == "x" and done.state == "finished"
    assert during["pending"] == 0 and during["executing"] == [done.id.encode()]
    validator("worker.schema.json").validate(during["lease"])  # every REQUIRED field
    assert r.keys(f"{queue_name}:worker:*") == [] and r.zcard(f"{queue_name}:scheduled") == 0


def test_eager_follows_retries_ttl_and_cancel_as_a_worker(url, queue_name, r) -> None:
    registry = Registry()
    tries: list[int] = []

    def flaky() -> str:
        tries.append(1)
        if len(tries) < 3:
            raise Retry("not yet", delay=0.01)
        return "done"

    def again() -> None:
        raise Retry("once more", delay=0)

    registry.add(flaky, name="flaky")
    registry.add(again, name="again")
    with Queue(queue_name, url, is_async=False, registry=registry) as eager:
        done = eager.enqueue("flaky", attempts=3)
        assert done.result == "done" and len(tries) == 3
        assert r.hget(done.key, "retries") == b"2"
        with pytest.raises(TaskFailed) as failed:
            eager.enqueue("again", attempts=1).wait(timeout=1)
        assert "after the last of 1 attempt(s)" in failed.value.reason
        # A hash whose retries already reached its attempts (typed by hand) ends after one try
        # (this raised UnboundLocalError).
        key = eager.keys.task("manual")
        r.hset(key, mapping={"function": "flaky", "state": "pending", "attempts": "1",
                             "retries": "5", "args": "{}"})  # fmt: skip
        r.lpush(eager.keys.executing, "manual")
        assert eager.eager is not None
        eager.eager.run("manual")
        assert r.hget(key, "result") == b"successful"
        # A cancel requested before the run, and a ttl long past, are honoured.
        for extra, outcome in (({"cancel-requested": "x"}, b"cancelled"),
                               ({"ttl": "1", "pending-created": "2020-01-01T00:00:00.000000Z"},
                                b"expired")):  # fmt: skip
            r.hdel(key, "result", "retries", "cancel-requested")
            r.hset(key, mapping={"function": "flaky", "state": "pending", "args": "{}", **extra})
            r.lpush(eager.keys.executing, "manual")
            eager.eager.run("manual")
            assert r.hget(key, "result") == outcome


def test_delay_honours_always_eager(url, queue_name, r, monkeypatch) -> None:
    monkeypatch.setenv("DOTHIS_REDIS_URL", url)

    @task(queue=queue_name, registry=Registry())
    def double(n: int) -> int:
        return n * 2

    set_always_eager(True)
    try:
        from dothis import default_registry

        default_registry.add(double.function, name=double.name)
        assert double.delay(21).result == 42
    finally:
        set_always_eager(False)
    assert r.llen(f"{queue_name}:pending") == 0


def test_the_retask_consumer_is_a_full_worker(url, queue_name, r, redis_server) -> None:
    from dothis.retask import Queue as RetaskQueue
    from dothis.retask import Task as RetaskTask

    producer = RetaskQueue(queue_name, {"port": redis_server.port})
    consumer = RetaskQueue(queue_name, {"port": redis_server.port})
    job = producer.enqueue(RetaskTask({"n": 1}))
    got = consumer.wait(wait_time=5)
    assert got is not None and got.data == {"n": 1}
    lease = as_text(r.hgetall(f"{queue_name}:worker:{consumer.consumer}"))
    validator("worker.schema.json").validate(lease)
    assert consumer.send(got, "ok")
    assert job.wait(5) and job.result == "ok"
    assert 86_000 < r.ttl(f"{queue_name}:task:{job.id}") <= 86_400  # the default result-ttl
    consumer.close()
    producer.close()


def test_close_returns_at_once(queue) -> None:
    task = queue.enqueue("echo", text="x")
    with pytest.raises(Exception):  # noqa: B017  (no worker: the wait times out)
        task.wait(timeout=0.05)
    began = time.monotonic()
    queue.close()
    assert time.monotonic() - began < 0.5  # the listener polled for 1 s before


def test_cancel_goes_on_past_an_unknown_id(url, queue, r) -> None:
    a, b = queue.enqueue("echo", text="a"), queue.enqueue("echo", text="b")
    result = CliRunner().invoke(main, ["cancel", "--url", url, "--queue", queue.name,
                                       a.id, "nope", b.id])  # fmt: skip
    assert result.exit_code == 1
    assert f"{a.id}  cancelled" in result.output and f"{b.id}  cancelled" in result.output
    assert "nope  not found" in result.output


def test_a_worker_takes_a_path_to_a_file(url, queue, tmp_path) -> None:
    from support import WorkerProcess

    module = tmp_path / "mytasks.py"
    module.write_text("from dothis import task\n\n\n@task\ndef shout(text):\n"
                      "    return text.upper()\n")  # fmt: skip
    worker = WorkerProcess(url, queue.name, modules=(str(module),))
    try:
        assert queue.enqueue("shout", text="hi").wait(timeout=20) == "HI"
    finally:
        worker.stop()


@pytest.fixture(scope="module")
def locked() -> RedisServer:
    server = RedisServer(password="s3cret")
    yield server
    server.stop()


def test_redis_setup_errors_name_the_cause_and_the_fix(locked: RedisServer, queue_name) -> None:
    cases = [
        (f"redis://127.0.0.1:{locked.port}/0", AuthenticationFailed, "requires a password"),
        (f"redis://:wrong@127.0.0.1:{locked.port}/0", AuthenticationFailed, "refused"),
        (f"redis://:s3cret@127.0.0.1:{locked.port}/99", InvalidUrl, "no database '99'"),
    ]
    for url, kind, cause in cases:
        with Queue(queue_name, url) as queue, pytest.raises(kind) as raised:
            queue.enqueue("echo", text="x")
        message = str(raised.value)
        assert cause in message and "redis://" in message and "wrong" not in message, message
        assert raised.value.code == kind.code
    with Queue(queue_name, f"redis://:s3cret@127.0.0.1:{locked.port}/0") as queue:
        assert queue.enqueue("echo", text="x").state == "pending"


def test_the_worker_reports_a_missing_password_in_one_line(locked: RedisServer, queue_name):
    from support import WorkerProcess

    worker = WorkerProcess(f"redis://127.0.0.1:{locked.port}/0", queue_name)
    assert worker.wait() == 1
    output = worker.output()
    assert "requires a password" in output and "Traceback" not in output, output
    assert "is redis-server running" not in output


def test_errors_carry_the_codes_of_the_shared_table() -> None:
    from support import REPO

    import dothis

    table = json.loads((REPO / "schema" / "client-errors.json").read_text())
    entries = table["errors"] if isinstance(table, dict) else table
    by_class = {entry["python"]: entry for entry in entries if entry.get("python")}
    classes = {name: value for name, value in vars(dothis).items()
               if isinstance(value, type) and issubclass(value, dothis.DothisError)}  # fmt: skip
    assert set(classes) == set(by_class)
    for name, cls in classes.items():
        if "code-from" not in by_class[name] and name != "DependencyError":
            assert cls.code == by_class[name]["code"], name
