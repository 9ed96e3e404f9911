"""Three kinds of hygiene: no password in any log line, exception message or CLI output; a requeue
never starts a second run of a task; no SCAN over key patterns to find a queue's workers (and a
Queue.delete that leaves other queues' keys alone)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import taskfns  # noqa: F401  (registers echo, fail, sleep)
from click.testing import CliRunner
from support import RedisServer, WorkerProcess, free_port, wait_until

from dothis import DothisError, Queue
from dothis.cli import main
from dothis.producer.inspection import queue_info
from dothis.store import leases
from dothis.store.connection import redact
from dothis.wire.clock import now_ms

pytestmark = pytest.mark.integration

SECRET = "Sh0uld-n0t-leak"
BROKEN = "Br0ken/n0t-leaked"  # the "/" ends the host part: a URL that does not parse
PASSWORD = "n0t-in-the-logs"


def workers_key(queue: str) -> str:
    """SPEC.md 2.1: the registry of a queue's workers."""
    return f"{queue}:workers"


# -- 2. credentials are redacted wherever a URL is shown ------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://user:secret@host:1/0", "redis://user:***@host:1/0"),
        ("redis://:secret@host:1/0", "redis://:***@host:1/0"),
        ("rediss://:secret@host:1/0", "rediss://:***@host:1/0"),
        ("redis://host:1/0", "redis://host:1/0"),
        ("redis://:se@cret@host:1/0", "redis://:***@host:1/0"),
        ("redis://:secret%40x@host:1/0", "redis://:***@host:1/0"),
        ("redis://user:se/cret@host:1/0", "redis://user:***@host:1/0"),  # does not parse
        ("redis://secret@host:1/0", "redis://***@host:1/0"),  # a password in the user's place
        ("redis://host:1/0?password=secret&db=1", "redis://host:1/0?password=***&db=1"),
        ("unix://:secret@/tmp/redis.sock?db=0", "unix://:***@/tmp/redis.sock?db=0"),
        ("redis://:secret@[::1", "redis://:***@[::1"),
    ],
)
def test_redact(url: str, shown: str) -> None:
    assert redact(url) == shown
    assert "secret" not in redact(url)


@pytest.fixture(scope="module")
def locked() -> Iterator[RedisServer]:
    server = RedisServer(password=PASSWORD)
    yield server
    server.stop()


def cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    return f"{result.output}\n{result.exception!r}"


def test_cli_output_never_shows_the_password(locked: RedisServer) -> None:
    wrong = f"redis://:{SECRET}@127.0.0.1:{locked.port}/0"
    nobody = f"redis://:{SECRET}@127.0.0.1:{free_port()}/0"
    broken = f"redis://user:{BROKEN}@127.0.0.1:{locked.port}/0"
    no_db = f"redis://:{PASSWORD}@127.0.0.1:{locked.port}/99"
    outputs = [
        cli("info", "--url", wrong, "-q", "q"),
        cli("enqueue", "--url", nobody, "-q", "q", "echo", "-a", "text=x"),
        cli("failed", "--url", broken, "-q", "q"),
        cli("cancel", "--url", wrong, "-q", "q", "some-id"),
        cli("info", "--url", no_db, "-q", "q"),
    ]
    for output in outputs:
        assert "***@" in output, output  # the URL is shown...
        for secret in (SECRET, PASSWORD, *BROKEN.split("/")):  # ...its password is not
            assert secret not in output, output


def test_exceptions_never_show_the_password(locked: RedisServer) -> None:
    for url in (f"redis://:{SECRET}@127.0.0.1:{locked.port}/0",
                f"redis://:{SECRET}@127.0.0.1:{free_port()}/0",
                f"redis://user:{BROKEN}@127.0.0.1:1/0"):  # fmt: skip
        with pytest.raises(DothisError) as caught, Queue("q", url) as queue:
            queue.enqueue("echo", text="x")
        text = f"{caught.value}\n{caught.value!r}"
        assert "***@" in text
        assert all(secret not in text for secret in (SECRET, *BROKEN.split("/"))), text


def test_worker_logs_never_show_the_password(locked: RedisServer) -> None:
    """A worker process with a password URL, at DEBUG: its start banner names the URL, and so
    does the warning when Redis goes away; neither may show the password."""
    server = RedisServer(password=PASSWORD)  # its own: it is stopped under the worker
    client = server.client()
    queue = f"hygiene-{time.monotonic_ns()}"
    worker = WorkerProcess(server.url, queue, "--log-level", "DEBUG", "--heartbeat-ms", "200",
                           "--lease-ms", "1000")  # fmt: skip
    try:
        wait_until(lambda: worker.process.poll() is not None or "serving" in worker.output(),
                   timeout=20)  # fmt: skip
        with Queue(queue, server.url) as producer:
            assert producer.enqueue("echo", text="hi").wait(10) == "hi"
        client.close()
        server.stop()  # the worker loses Redis and says so
        wait_until(lambda: "lost Redis" in worker.output() or "reconnect" in worker.output(),
                   timeout=20)  # fmt: skip
    finally:
        worker.stop()
        server.stop()
    output = worker.output()
    assert "serving" in output, output
    assert "127.0.0.1" in output  # URLs were printed...
    assert PASSWORD not in output, output  # ...never with the password


# -- 3. requeue only finished tasks -----------------------------------------------------------


def test_requeue_all_skips_a_reused_id_that_runs(url: str, queue_name: str, r: redis.Redis,
                                                 start_worker: Any) -> None:  # fmt: skip
    """The id failed once and sits in the failed registry; enqueued again, it runs now.
    ``dothis failed --requeue-all`` must not push it again (two workers would run it at once):
    the stale id leaves the registry, the running task is untouched."""
    start_worker(concurrency=2)
    with Queue(queue_name, url) as queue:
        first = queue.enqueue_call("fail", {"message": "boom"}, task_id="reused")
        with pytest.raises(DothisError):
            first.wait(10)
        assert r.zscore(queue.keys.failed, "reused") is not None
        queue.enqueue_call("sleep", {"seconds": 1.5}, task_id="reused")
        wait_until(lambda: r.hget(queue.keys.task("reused"), "state") == b"executing")
        output = cli("failed", "--url", url, "-q", queue_name, "--requeue-all")
        assert "reused" in output and "not requeued" in output, output
        assert r.lrange(queue.keys.pending, 0, -1) == []
        assert r.zscore(queue.keys.failed, "reused") is None
        running = queue.fetch("reused")
        assert running is not None and running.wait(10) == 1.5
        assert r.hget(queue.keys.task("reused"), "claims") == b"1"  # one run, never a second


def test_requeue_still_requeues_a_failed_task(url: str, queue_name: str, r: redis.Redis) -> None:
    with Queue(queue_name, url) as queue:
        key = queue.keys.task("f-1")
        r.hset(key, mapping={"function": "echo", "state": "finished", "result": "failed",
                             "args": "{}", "error-code": "exception"})  # fmt: skip
        r.zadd(queue.keys.failed, {"f-1": 1})
        assert queue.requeue_outcome("f-1") == "requeued"
        assert r.hget(key, "state") == b"pending"
        assert queue.requeue_outcome("f-1") == "not-failed"
        r.zadd(queue.keys.failed, {"f-1": 1})  # pending now: a stale entry
        assert queue.requeue("f-1") is False
        assert r.zscore(queue.keys.failed, "f-1") is None
        assert r.lrange(queue.keys.pending, 0, -1) == [b"f-1"]


# -- 4. the registry of workers, and no SCAN over key patterns ----------------------------------


def test_info_next_to_a_queue_named_like_a_worker_key(url: str, queue_name: str) -> None:
    """``<q>:worker:*`` also matches the keys of queue ``<q>:worker:y``: a SCAN for worker keys
    found its pending list (a list) and HGETALL failed with WRONGTYPE."""
    with Queue(f"{queue_name}:worker:y", url) as neighbour:
        neighbour.enqueue("echo", text="x")
    output = cli("info", "--url", url, "-q", queue_name, "--json")
    assert json.loads(output.partition("\n\n")[0])["queues"][0]["workers"] == [], output
    with Queue(queue_name, url) as queue:
        assert queue_info(queue)["workers"] == []


def test_info_does_not_scan() -> None:
    server = RedisServer()
    try:
        client = server.client()
        for start in range(0, 20_000, 5_000):  # keys info must not walk through
            client.mset({f"noise:{n}": "x" for n in range(start, start + 5_000)})
        client.config_resetstat()
        with Queue("dothis", server.url) as queue:
            queue_info(queue)
        stats = client.info("commandstats")
        assert "cmdstat_scan" not in stats and "cmdstat_keys" not in stats, sorted(stats)
        client.close()
    finally:
        server.stop()


def test_leases_list_and_unlist_a_worker(r: redis.Redis, queue_name: str) -> None:
    key, registry = f"{queue_name}:worker:w-1", workers_key(queue_name)
    listing = leases.Listing(registry, "w-1")
    fields = {"id": "w-1", "host": "h", "pid": "1", "language": "python", "functions": "[]",
              "queues": "[]", "started": "x", "heartbeat": "x", "protocol": "1"}  # fmt: skip
    before = now_ms()
    leases.register(r, key, fields, 1000, listing)
    score = r.zscore(registry, "w-1")
    assert score is not None and before + 1000 <= score <= now_ms() + 1000
    time.sleep(0.05)
    assert leases.heartbeat(r, key, 1000, listing) is True
    renewed = r.zscore(registry, "w-1")
    assert renewed is not None and renewed > score
    assert 0 < r.pttl(key) <= 1000
    leases.leave(r, key, listing)
    assert r.exists(key) == 0 and r.zscore(registry, "w-1") is None


def test_info_reads_the_registry(url: str, queue_name: str, r: redis.Redis) -> None:
    """Listed and alive: shown. Past its score, or its key gone: dead, not shown; past ids are
    removed. A key without a listing (a worker that predates the registry): not shown."""
    registry, now = workers_key(queue_name), now_ms()
    for worker in ("alive", "expired", "keyless", "unlisted"):
        if worker != "keyless":
            r.hset(f"{queue_name}:worker:{worker}", mapping={"id": worker, "host": "h",
                                                             "pid": "1"})  # fmt: skip
    r.zadd(registry, {"alive": now + 60_000, "expired": now - 1, "keyless": now + 60_000})
    with Queue(queue_name, url) as queue:
        shown = queue_info(queue)["workers"]
    assert [worker["id"] for worker in shown] == ["alive"]
    assert r.zscore(registry, "expired") is None
    output = cli("info", "--url", url, "-q", queue_name, "--json")
    listed = json.loads(output.partition("\n\n")[0])["queues"][0]["workers"]
    assert [worker["id"] for worker in listed] == ["alive"], output


def test_a_worker_lists_itself_and_leaves(url: str, queue_name: str, r: redis.Redis,
                                          start_worker: Any) -> None:  # fmt: skip
    thread = start_worker(lease_ms=1000, heartbeat_ms=200)
    worker_id = thread.worker.id
    registry = workers_key(queue_name)
    wait_until(lambda: r.zscore(registry, worker_id))
    first = r.zscore(registry, worker_id)
    assert first is not None and now_ms() < first <= now_ms() + 1000
    wait_until(lambda: (r.zscore(registry, worker_id) or 0) > first, timeout=3)
    with Queue(queue_name, url) as queue:
        assert [worker["id"] for worker in queue_info(queue)["workers"]] == [worker_id]
    thread.stop()
    assert r.zscore(registry, worker_id) is None
    assert r.exists(f"{queue_name}:worker:{worker_id}") == 0


def test_delete_leaves_queues_named_like_its_keys(url: str, queue_name: str,
                                                  r: redis.Redis) -> None:  # fmt: skip
    """Queue.delete SCANs ``<q>:task:*`` and ``<q>:dependents:*``: the keys of queues named
    ``<q>:task:x`` or ``<q>:dependents:z`` match, and must not be deleted with it."""
    with Queue(queue_name, url) as queue, Queue(f"{queue_name}:task:x", url) as tasks_like, \
            Queue(f"{queue_name}:dependents:z", url) as dependents_like:  # fmt: skip
        mine = queue.enqueue("echo", text="mine")
        theirs = tasks_like.enqueue("echo", text="theirs")
        other = dependents_like.enqueue("echo", text="other")
        queue.delete()
        assert r.exists(mine.key) == 0
        assert r.lrange(tasks_like.keys.pending, 0, -1) == [theirs.id.encode()]
        assert r.lrange(dependents_like.keys.pending, 0, -1) == [other.id.encode()]
        assert r.exists(other.key) == 1
        # (the hash <q>:task:x:task:<id> is also, by name, task "x:task:<id>" of <q>: that one
        # no name-based rule can tell apart, so it goes with <q>)
