"""``dothis enqueue``, ``inspect``, ``failed``, ``requeue``, ``cancel``, ``empty`` and ``purge``
against a real redis-server."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
import taskfns  # noqa: F401  (registers echo, fail, sleep)
from click.testing import CliRunner, Result
from support import wait_until

from dothis import Queue
from dothis.cli import main
from dothis.wire.clock import now_ms

pytestmark = pytest.mark.integration


def run(*args: str, **kwargs: Any) -> Result:
    return CliRunner().invoke(main, list(args), env={"DOTHIS_CONFIG": None}, **kwargs)


@pytest.fixture
def cli(url: str, queue_name: str) -> Any:
    """``dothis <command> --url <url> -q <queue> <args>``."""

    def invoke(command: str, *args: str, **kwargs: Any) -> Result:
        return run(command, "--url", url, "-q", queue_name, *args, **kwargs)

    return invoke


def failed_by_hand(r: redis.Redis, queue: str, task_id: str, function: str = "echo") -> None:
    """A failed task as finish.lua leaves it (SPEC.md 5.5)."""
    r.hset(f"{queue}:task:{task_id}", mapping={
        "function": function, "state": "finished", "result": "failed", "args": '{"text": "x"}',
        "error-code": "exception", "error-reason": "boom", "error-exception": "Traceback: boom",
        "finished-created": "2026-01-01T00:00:00.000000Z"})  # fmt: skip
    r.zadd(f"{queue}:failed", {task_id: now_ms()})


def fields(r: redis.Redis, queue: str, task_id: str) -> dict[str, str]:
    raw = r.hgetall(f"{queue}:task:{task_id}")
    return {key.decode(): value.decode() for key, value in raw.items()}


def test_enqueue_takes_arguments_three_ways(cli: Any, r: redis.Redis, queue_name: str) -> None:
    result = cli("enqueue", "echo", "text=hi", "n=3", "--args", '{"a": [1], "n": 1}', "-a",
                 "b=true", "-a", "s=not json")  # fmt: skip
    assert result.exit_code == 0, result.output
    task_id = result.stdout.strip()
    assert json.loads(fields(r, queue_name, task_id)["args"]) == {
        "a": [1], "n": 3, "b": True, "s": "not json", "text": "hi"}  # fmt: skip
    assert r.lrange(f"{queue_name}:pending", 0, -1) == [task_id.encode()]


def test_enqueue_takes_every_option(cli: Any, r: redis.Redis, queue_name: str) -> None:
    parent = cli("enqueue", "echo", "--id", "parent", "--delay", "3600").stdout.strip()
    result = cli("enqueue", "echo", "text=x", "--id", "child", "--depends-on", parent,
                 "--attempts", "3", "--timeout", "2.5", "--ttl", "60", "--result-ttl", "10",
                 "--failure-ttl", "-1", "--on-success", "echo", "--on-failure", "fail",
                 "--description", "a child")  # fmt: skip
    assert result.exit_code == 0 and result.stdout.strip() == "child", result.output
    got = fields(r, queue_name, "child")
    assert got["state"] == "waiting" and json.loads(got["depends-on"]) == ["parent"]
    assert (got["attempts"], got["timeout"], got["ttl"]) == ("3", "2.5", "60")
    assert (got["result-ttl"], got["failure-ttl"]) == ("10", "-1")
    assert (got["on-success"], got["on-failure"], got["description"]) == ("echo", "fail",
                                                                          "a child")  # fmt: skip
    assert fields(r, queue_name, "parent")["state"] == "scheduled"
    cli("enqueue", "echo", "--id", "old-flag", "--task-timeout", "4")
    assert fields(r, queue_name, "old-flag")["timeout"] == "4"


def test_enqueue_places_a_task(cli: Any, r: redis.Redis, queue_name: str) -> None:
    cli("enqueue", "echo", "--id", "back")
    cli("enqueue", "echo", "--id", "front", "--at-front")
    assert r.lrange(f"{queue_name}:pending", 0, -1) == [b"back", b"front"]  # RPUSH: next
    cli("enqueue", "echo", "--id", "later", "--at", "2030-01-02T03:04:05Z")
    due = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp() * 1000
    assert r.zscore(f"{queue_name}:scheduled", "later") == due
    cli("enqueue", "echo", "--id", "naive", "--at", "2030-01-02T03:04:05")  # read as UTC
    assert r.zscore(f"{queue_name}:scheduled", "naive") == due


def test_enqueue_waits(cli: Any, start_worker: Any) -> None:
    start_worker()
    result = cli("enqueue", "echo", "text=ooh yeeah", "--wait")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1] == '"ooh yeeah"'
    failing = cli("enqueue", "fail", "message=on purpose", "--wait")
    assert failing.exit_code == 1 and "Traceback" not in failing.output
    assert failing.stderr.startswith("error: task ") and "(exception): on purpose" in failing.stderr


def test_enqueue_wait_runs_out_of_time(cli: Any) -> None:
    result = cli("enqueue", "echo", "--wait", "--timeout-wait", "0.2")  # no worker
    assert result.exit_code == 2 and result.stderr.startswith("error: "), result.output


def test_inspect_a_failed_task(cli: Any, start_worker: Any, url: str, queue_name: str) -> None:
    start_worker()
    with Queue(queue_name, url) as queue:
        task = queue.enqueue("fail", message="broken [on purpose]", attempts=2)
        wait_until(lambda: task.outcome == "failed", timeout=20)
    data = json.loads(cli("inspect", task.id, "--json").stdout)
    assert (data["id"], data["queue"], data["function"]) == (task.id, queue_name, "fail")
    assert (data["state"], data["outcome"]) == ("finished", "failed")
    assert data["args"] == {"message": "broken [on purpose]"}
    assert data["error"]["code"] == "exception"
    assert data["error"]["reason"] == "broken [on purpose]"
    assert "Traceback" in data["error"]["exception"]
    assert (data["attempts"], data["retries"], data["claims"]) == (2, 1, 2)
    assert data["waited_seconds"] >= 0 and data["ran_seconds"] >= 0
    assert data["fields"]["error-code"] == "exception"
    shown = cli("inspect", task.id).stdout
    assert "broken [on purpose]" in shown and "Traceback" in shown and "attempts 2" in shown


def test_inspect_shows_progress_and_the_value(cli: Any, r: redis.Redis, queue_name: str) -> None:
    key = f"{queue_name}:task:t-1"
    r.hset(key, mapping={"function": "echo", "state": "executing", "args": "{}",
                         "pending-created": "2026-01-01T00:00:00.000000Z",
                         "executing-created": "2026-01-01T00:00:02.500000Z",
                         "progress": '{"done": 3, "of": 10}'})  # fmt: skip
    data = json.loads(cli("inspect", "t-1", "--json").stdout)
    assert data["progress"] == {"done": 3, "of": 10}
    assert data["waited_seconds"] == 2.5 and data["ran_seconds"] > 0  # running: until now
    assert data["error"] is None and data["value"] is None
    shown = cli("inspect", "t-1").stdout
    assert "progress" in shown and '"done": 3' in shown
    r.hset(key, mapping={"state": "finished", "result": "successful", "result-value": "[1, 2]",
                         "finished-created": "2026-01-01T00:00:03.000000Z"})  # fmt: skip
    data = json.loads(cli("inspect", "t-1", "--json").stdout)
    assert data["value"] == [1, 2] and data["ran_seconds"] == 0.5


def test_failed_lists_and_requeues(cli: Any, r: redis.Redis, queue_name: str) -> None:
    failed_by_hand(r, queue_name, "f-1")
    failed_by_hand(r, queue_name, "f-2", function="fail")
    rows = json.loads(cli("failed", "--json").stdout)
    assert {row["id"] for row in rows} == {"f-1", "f-2"}
    assert {row["function"] for row in rows} == {"echo", "fail"}
    assert rows[0]["error_code"] == "exception" and rows[0]["error_reason"] == "boom"
    assert "f-1" in cli("failed").stdout
    result = cli("failed", "--requeue", "f-1")
    assert result.exit_code == 0 and "f-1  requeued" in result.stdout
    assert cli("failed", "--requeue-all").stdout == "f-2  requeued\n"
    assert sorted(r.lrange(f"{queue_name}:pending", 0, -1)) == [b"f-1", b"f-2"]


def test_requeue(cli: Any, r: redis.Redis, queue_name: str) -> None:
    for task_id, function in (("a", "echo"), ("b", "fail"), ("c", "fail"), ("d", "echo")):
        failed_by_hand(r, queue_name, task_id, function)
    result = cli("requeue", "a")
    assert result.exit_code == 0 and result.stdout == "a  requeued\n"
    assert cli("requeue", "--function", "fail").exit_code == 0
    assert sorted(r.lrange(f"{queue_name}:pending", 0, -1)) == [b"a", b"b", b"c"]
    assert r.zrange(f"{queue_name}:failed", 0, -1) == [b"d"]
    missing = cli("requeue", "a", "nope")
    assert missing.exit_code == 1 and "nope  not in the failed set" in missing.stdout
    assert cli("requeue", "--all").stdout == "d  requeued\n"
    assert cli("requeue").exit_code == 2  # nothing named


def test_cancel(cli: Any, r: redis.Redis, queue_name: str) -> None:
    cli("enqueue", "echo", "--id", "c-1")
    result = cli("cancel", "c-1", "nope")
    assert result.exit_code == 1
    assert "c-1  cancelled" in result.stdout and "nope  not found" in result.stdout
    assert fields(r, queue_name, "c-1")["result"] == "cancelled"


def test_delete(cli: Any, r: redis.Redis, queue_name: str) -> None:
    cli("enqueue", "echo", "--id", "d-1")
    result = cli("delete", "d-1", "nope")
    assert result.exit_code == 1
    assert "d-1  deleted" in result.stdout and "nope  not found" in result.stdout
    assert not r.exists(f"{queue_name}:task:d-1") and r.llen(f"{queue_name}:pending") == 0
    assert cli("delete", "d-1").exit_code == 1


def test_empty_asks_first(cli: Any, r: redis.Redis, queue_name: str) -> None:
    for n in range(3):
        cli("enqueue", "echo", "--id", f"e-{n}")
    cli("enqueue", "echo", "--id", "later", "--delay", "3600")
    refused = cli("empty", input="n\n")
    assert refused.exit_code == 1 and "Remove the 3 pending task(s)" in refused.output
    assert r.llen(f"{queue_name}:pending") == 3
    assert "removed 3 pending" in cli("empty", input="y\n").stdout
    assert r.llen(f"{queue_name}:pending") == 0 and r.exists(f"{queue_name}:task:e-0") == 0
    assert r.zscore(f"{queue_name}:scheduled", "later") is not None  # pending only
    assert cli("empty", "--yes").stdout.startswith("removed 0 pending")


def test_purge_asks_first(cli: Any, r: redis.Redis, queue_name: str) -> None:
    cli("enqueue", "echo", "--id", "p-1")
    cli("enqueue", "echo", "--id", "p-2", "--delay", "3600")
    cli("enqueue", "echo", "--id", "p-4", "--depends-on", "p-2")  # waits: in <queue>:waiting
    failed_by_hand(r, queue_name, "p-3")
    refused = cli("purge", input="n\n")
    assert refused.exit_code == 1 and "1 pending, 1 scheduled" in refused.output
    assert r.exists(f"{queue_name}:task:p-1") == 1
    result = cli("purge", "--yes")
    assert result.exit_code == 0 and f"deleted queue '{queue_name}'" in result.stdout
    for key in ("pending", "scheduled", "failed", "waiting", "task:p-1", "task:p-2", "task:p-3",
                "task:p-4", "dependents:p-2"):  # fmt: skip
        assert r.exists(f"{queue_name}:{key}") == 0, key
