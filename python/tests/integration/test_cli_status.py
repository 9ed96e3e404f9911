"""``dothis info`` and ``dothis check`` against a real redis-server: counts, the registry of
queues, live workers and what they run, warnings, refreshes and the exit codes of check."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
import redis
import taskfns  # noqa: F401  (registers echo, fail, sleep)
from click.testing import CliRunner, Result
from support import wait_until

from dothis import Queue
from dothis.cli import main, status
from dothis.producer.inspection import known_queues
from dothis.wire.clock import iso_from_ms, now_iso, now_ms

pytestmark = pytest.mark.integration


def run(*args: str, **kwargs: Any) -> Result:
    env = {"DOTHIS_CONFIG": None, "DOTHIS_QUEUE": None}
    return CliRunner().invoke(main, list(args), env=env, **kwargs)


def info(url: str, *queues: str) -> list[dict[str, Any]]:
    result = run("info", "--url", url, *(f"--queue={name}" for name in queues), "--json")
    assert result.exit_code == 0, result.output
    return list(json.loads(result.stdout)["queues"])


def check(url: str, queue: str, *args: str) -> tuple[int, dict[str, Any]]:
    result = run("check", "--url", url, "-q", queue, "--json", *args)
    return result.exit_code, json.loads(result.stdout)


def fake_worker(r: redis.Redis, queue: str, worker_id: str, functions: list[str],
                running: list[dict[str, str]] | None = None) -> None:  # fmt: skip
    """A live worker as SPEC.md 9.1 describes its key, listed in ``<queue>:workers``."""
    fields = {"id": worker_id, "host": "box", "pid": "42", "language": "go",
              "queues": json.dumps([queue]), "functions": json.dumps(functions),
              "heartbeat": now_iso(), "started": now_iso()}  # fmt: skip
    if running is not None:
        fields["running"] = json.dumps(running)
    r.hset(f"{queue}:worker:{worker_id}", mapping=fields)
    r.zadd(f"{queue}:workers", {worker_id: now_ms() + 60_000})


def test_info_counts_every_state(url: str, queue_name: str, r: redis.Redis) -> None:
    with Queue(queue_name, url) as queue:
        queue.enqueue("echo", text="a")
        queue.enqueue("echo", text="b", delay=3600)
        parent = queue.enqueue("echo", text="c", delay=3600)
        queue.enqueue("echo", text="d", depends_on=parent)
    [item] = info(url, queue_name)
    assert item["queue"] == queue_name
    counts = {name: item[name] for name in status.COUNTS}
    assert counts == {"pending": 1, "scheduled": 2, "waiting": 1, "executing": 0, "failed": 0,
                      "succeeded": 0, "rejected": 0}  # fmt: skip
    assert item["oldest_pending_seconds"] >= 0 and item["workers"] == []
    assert item["warnings"] == [f"no live worker on queue {queue_name}: 1 pending task(s) wait"]
    shown = run("info", "--url", url, "-q", queue_name).stdout
    assert "1 pending, 2 scheduled, 1 waiting" in shown and "no live workers" in shown
    assert f"warning: no live worker on queue {queue_name}" in shown


def test_info_without_a_queue_reads_the_registry_of_queues(url: str, queue_name: str,
                                                           r: redis.Redis) -> None:  # fmt: skip
    mine = [f"{queue_name}-a", f"{queue_name}-b"]
    r.zadd("dothis.queues", {name: now_ms() for name in mine})
    r.config_resetstat()
    client = redis.Redis.from_url(url)
    listed = known_queues(client)
    client.close()
    assert set(mine) <= set(listed) and listed == sorted(listed)
    stats = r.info("commandstats")
    assert "cmdstat_scan" not in stats and "cmdstat_keys" not in stats
    shown = {item["queue"] for item in info(url)}
    assert set(mine) <= shown


def test_every_queue_goes_past_one_that_cannot_be_read(url: str, queue_name: str,
                                                      r: redis.Redis) -> None:  # fmt: skip
    broken = f"{queue_name}-broken"
    r.zadd("dothis.queues", {broken: now_ms(), queue_name: now_ms()})
    r.set(f"{broken}:pending", "written by hand")
    try:
        items = {item["queue"]: item for item in info(url)}
        assert "wrong type" in items[broken]["error"] and items[queue_name]["pending"] == 0
        assert f"{broken}" in run("info", "--url", url).stdout
        result = run("check", "--url", url, "--json")
        verdicts = {item["queue"]: item for item in json.loads(result.stdout)["queues"]}
        assert result.exit_code == 2 and verdicts[queue_name]["ok"] is True
        assert verdicts[broken]["problems"][0].startswith("cannot be read: ")
    finally:
        r.delete(f"{broken}:pending")
        r.zrem("dothis.queues", broken)


def test_info_shows_workers_and_warns_of_unserved_functions(url: str, queue_name: str,
                                                            r: redis.Redis) -> None:  # fmt: skip
    running = [{"id": "t-9", "function": "echo", "since": iso_from_ms(now_ms() - 5000)}]
    fake_worker(r, queue_name, "w-1", ["echo"], running)
    fake_worker(r, queue_name, "w-old", ["echo"])  # an older worker: no running field
    with Queue(queue_name, url) as queue:
        for function in ("echo", "resize", "resize", "echo", "send"):
            queue.enqueue(function)
    [item] = info(url, queue_name)
    workers = {worker["id"]: worker for worker in item["workers"]}
    assert set(workers) == {"w-1", "w-old"}
    assert workers["w-1"]["functions"] == ["echo"] and workers["w-1"]["queues"] == [queue_name]
    assert workers["w-1"]["running"] == running and workers["w-old"]["running"] == []
    assert workers["w-1"]["heartbeat_age_seconds"] < 60
    assert item["warnings"] == [
        f"no live worker runs function resize on queue {queue_name} (2 of the next 5 pending)",
        f"no live worker runs function send on queue {queue_name} (1 of the next 5 pending)",
    ]
    shown = run("info", "--url", url, "-q", queue_name).stdout
    assert "w-1" in shown and "box:42" in shown and "t-9" in shown
    assert "warning: no live worker runs function resize" in shown


def test_info_shows_what_a_real_worker_runs(url: str, queue_name: str,
                                            start_worker: Any) -> None:  # fmt: skip
    start_worker(pool="thread", heartbeat_ms=100, lease_ms=2000)
    with Queue(queue_name, url) as queue:
        task = queue.enqueue("sleep", seconds=3)

        def running() -> list[Any]:
            workers = info(url, queue_name)[0]["workers"]
            return [item["id"] for worker in workers for item in worker["running"]]

        assert wait_until(running, timeout=10) == [task.id]
        [worker] = info(url, queue_name)[0]["workers"]
        assert "sleep" in worker["functions"] and worker["language"] == "python"
        shown = run("info", "--url", url, "-q", queue_name).stdout
        assert "sleep" in shown and task.id[:8] in shown
        task.wait(10)


def test_info_refreshes_until_interrupted(url: str, queue_name: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    naps: list[float] = []

    def sleep(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(status, "time", SimpleNamespace(sleep=sleep))
    result = run("info", "--url", url, "-q", queue_name, "--json", "--interval", "0.5")
    assert result.exit_code == 0 and naps == [0.5, 0.5]
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and all(json.loads(line)["queues"][0]["queue"] == queue_name
                                   for line in lines)  # fmt: skip
    naps.clear()
    shown = run("info", "--url", url, "-q", queue_name, "--interval", "1")
    assert shown.exit_code == 0 and queue_name in shown.stdout and naps == [1, 1]


def test_check_exit_codes(url: str, queue_name: str, r: redis.Redis) -> None:
    assert check(url, queue_name) == (0, {"ok": True, "max_age": 300.0, "queues": [{
        "queue": queue_name, "ok": True, "problems": [], "pending": 0, "workers": 0,
        "oldest_pending_seconds": None, "warnings": []}]})  # fmt: skip
    with Queue(queue_name, url) as queue:
        task = queue.enqueue("echo")
    code, report = check(url, queue_name)
    assert code == 2 and report["ok"] is False
    assert report["queues"][0]["problems"] == ["1 pending task(s) and no live worker"]
    fake_worker(r, queue_name, "w-1", ["echo"])
    assert check(url, queue_name)[0] == 0
    r.hset(task.key, "pending-created", iso_from_ms(now_ms() - 600_000))  # waited 10 minutes
    code, report = check(url, queue_name)
    assert code == 2 and "the oldest pending task has waited" in report["queues"][0]["problems"][0]
    assert check(url, queue_name, "--max-age", "900")[0] == 0
    human = run("check", "--url", url, "-q", queue_name)
    assert human.exit_code == 2 and human.stdout.startswith(f"FAIL  {queue_name}: the oldest")
    assert run("check", "--url", url, "-q", queue_name, "--max-age", "900").stdout.startswith(
        f"ok  {queue_name}: 1 pending, 1 live worker(s)"
    )
