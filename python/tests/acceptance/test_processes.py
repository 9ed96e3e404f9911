"""Real `dothis worker` processes, as a user starts them."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest
import redis
from support import WorkerProcess, wait_until

from dothis import Queue

pytestmark = pytest.mark.acceptance

SEED_ID = "11111111-2222-2222-2222-333333333333"
SEED_FIELDS = ["function", "state", "args", "pending-created", "executing-created",
               "result-value", "result", "finished-created"]  # fmt: skip


def redis_cli(port: int, *args: str) -> str:
    done = subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True,
                          timeout=10, check=True)  # fmt: skip
    return done.stdout


def test_seed_transcript_verbatim(redis_server, r: redis.Redis) -> None:
    worker = WorkerProcess(redis_server.url, "dothis")
    try:
        wait_until(lambda: r.keys("dothis:worker:*"), timeout=15)
        pubsub = r.pubsub()
        pubsub.subscribe("dothis:results")
        assert pubsub.get_message(timeout=5)["type"] == "subscribe"
        port = redis_server.port
        key = f"dothis:task:{SEED_ID}"
        assert redis_cli(port, "HMGET", key, "result", "result-value") == "\n\n"  # two nils
        redis_cli(port, "HSET", key, "function", "echo")
        redis_cli(port, "HSET", key, "state", "pending")
        redis_cli(port, "HSET", key, "args", '{ "text": "ooh yeeah" }')
        redis_cli(port, "LPUSH", "dothis:pending", SEED_ID)
        wait_until(lambda: (pubsub.get_message(timeout=0.1) or {}).get("data") == key.encode(),
                   timeout=10)  # fmt: skip
        assert redis_cli(port, "--no-raw", "HMGET", key, "result", "result-value") == (
            '1) "successful"\n2) "\\"ooh yeeah\\""\n'
        )
        fields = [name.decode() for name in r.hgetall(key)]
        assert [name for name in fields if name in SEED_FIELDS] == SEED_FIELDS
        assert set(fields) - set(SEED_FIELDS) == {"worker", "claims"}
        pubsub.close()
    finally:
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0, worker.output()


def test_sigkill_recovery_by_a_second_worker(url, queue_name, r, spawn_worker) -> None:
    lease_ms, reap_ms = 1000, 300
    timing = ("--lease-ms", str(lease_ms), "--heartbeat-ms", "300", "--reap-ms", str(reap_ms))
    first = spawn_worker(*timing, "--worker-id", "first")
    with Queue(queue_name, url) as queue:
        task = queue.enqueue("sleep", seconds=6)
        wait_until(lambda: r.hget(task.key, "state") == b"executing", timeout=15)
        spawn_worker(*timing, "--worker-id", "second")
        wait_until(lambda: r.exists(f"{queue_name}:worker:second"), timeout=15)
        first.signal(signal.SIGKILL)
        first.wait()
        killed = time.monotonic()
        recovered_by = wait_until(lambda: r.hget(task.key, "worker") == b"second", timeout=15)
        recovery = time.monotonic() - killed
        assert recovered_by
        assert task.wait(timeout=20) == 6
    fields = r.hgetall(task.key)
    assert fields[b"claims"] == b"2" and fields[b"result"] == b"successful"
    assert r.llen(f"{queue_name}:executing") == 0
    # SPEC.md 9.3: recovered within the lease plus one reap interval (slack for a loaded machine).
    assert recovery < (lease_ms + 1.2 * reap_ms) / 1000 + 1.5


def test_sigterm_lets_the_running_task_finish(url, queue_name, r, spawn_worker) -> None:
    worker = spawn_worker("--worker-id", "graceful")
    with Queue(queue_name, url) as queue:
        task = queue.enqueue("sleep", seconds=1.0)
        wait_until(lambda: r.hget(task.key, "state") == b"executing", timeout=15)
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0, worker.output()
        assert task.refresh().outcome == "successful"
    assert not r.exists(f"{queue_name}:worker:graceful")
    assert r.llen(f"{queue_name}:executing") == 0


def test_second_signal_returns_running_tasks_to_pending(url, queue_name, r, spawn_worker) -> None:
    worker = spawn_worker("--worker-id", "hurried")
    with Queue(queue_name, url) as queue:
        task = queue.enqueue("sleep", seconds=60)
        wait_until(lambda: r.hget(task.key, "state") == b"executing", timeout=15)
        worker.signal(signal.SIGTERM)
        wait_until(lambda: "finishing 1 running" in worker.output(), timeout=5)
        worker.signal(signal.SIGINT)
        worker.wait(timeout=10)
        assert task.state == "pending"
        assert r.lrange(f"{queue_name}:pending", 0, -1) == [task.id.encode()]
    assert r.llen(f"{queue_name}:executing") == 0
    assert not r.exists(f"{queue_name}:worker:hurried")


def test_two_ctrl_c_leave_quietly(url, queue_name, r, spawn_worker) -> None:
    """A second Ctrl-C returns running tasks to pending without a traceback from the pool."""
    worker = spawn_worker("--worker-id", "interrupted", "--concurrency", "2")
    with Queue(queue_name, url) as queue:
        tasks = [queue.enqueue("sleep", seconds=60) for _ in range(2)]
        wait_until(lambda: all(r.hget(t.key, "state") == b"executing" for t in tasks), timeout=15)
        worker.signal(signal.SIGINT)
        wait_until(lambda: "finishing 2 running" in worker.output(), timeout=5)
        worker.signal(signal.SIGINT)
        worker.wait(timeout=10)
        assert [task.state for task in tasks] == ["pending", "pending"]
    output = worker.output()
    assert "Traceback" not in output and "Error" not in output, output


def test_unreachable_redis_is_one_clear_line(queue_name) -> None:
    from support import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"
    worker = WorkerProcess(url, queue_name)
    assert worker.wait() == 1
    output = worker.output()
    assert f"cannot reach Redis at {url}" in output and "DOTHIS_REDIS_URL" in output
    assert "Traceback" not in output


@pytest.mark.parametrize("step", ["claimed", "started", "ran", "finished"])
def test_crash_after_each_step(url, queue_name, r, spawn_worker, step) -> None:
    """SPEC.md 9.5: a crash after any step loses nothing; after finish it never runs again."""
    timing = ("--lease-ms", "1000", "--heartbeat-ms", "300", "--reap-ms", "300")
    with Queue(queue_name, url) as queue:
        task = queue.enqueue("add", a=1, b=2)
        doomed = WorkerProcess(url, queue_name, *timing, "--worker-id", "doomed",
                               env={"DOTHIS_CRASH_AT": step})  # fmt: skip
        assert doomed.wait() == -signal.SIGKILL
        spawn_worker(*timing, "--worker-id", "rescuer")
        assert task.wait(timeout=20) == 3
        claims = int(r.hget(task.key, "claims") or 0)
        # claimed: start never ran, so the rescuer's claim is the first; finished: never rerun
        assert claims == {"claimed": 1, "started": 2, "ran": 2, "finished": 1}[step]
        assert r.hget(task.key, "worker") == (b"doomed" if step == "finished" else b"rescuer")
        assert r.llen(queue.keys.executing) == 0 and r.llen(queue.keys.pending) == 0


def test_the_grace_period_runs_out(url, queue_name, r, spawn_worker) -> None:
    """SPEC.md 9.4: after SIGTERM a task longer than the grace period goes back to pending."""
    worker = spawn_worker("--worker-id", "patient", "--grace-seconds", "1")
    with Queue(queue_name, url) as queue:
        task = queue.enqueue("sleep", seconds=60)
        wait_until(lambda: r.hget(task.key, "state") == b"executing", timeout=15)
        worker.signal(signal.SIGTERM)
        worker.wait(timeout=15)
        assert "grace period of 1 s is over" in worker.output()
        assert task.state == "pending"
    assert r.llen(f"{queue_name}:executing") == 0
    assert not r.exists(f"{queue_name}:worker:patient")
