"""Each role works with exactly the rules ``dothis acl`` prints, on a real redis-server, and
nothing more: a producer cannot read or write another queue, not even through a script, and a
refusal is a PermissionDenied naming the command, key or channel and the rule to add."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

import pytest
import redis
from support import RedisServer, WorkerProcess

from dothis import DothisError, Queue
from dothis.errors import PermissionDenied

from .conftest import MakeUser

pytestmark = [pytest.mark.integration, pytest.mark.acceptance]


def dothis(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The ``dothis`` command as a user runs it."""
    return subprocess.run([sys.executable, "-m", "dothis", *args, "--url", url],
                          capture_output=True, text=True, timeout=30, check=False)  # fmt: skip


def test_producer_worker_and_monitor_each_work_with_their_rules(
    make_user: MakeUser, tagged: Callable[[], str]
) -> None:
    queue = tagged()
    producer, worker, monitor = (make_user(role, queue) for role in ("producer", "worker",
                                                                      "monitor"))  # fmt: skip
    process = WorkerProcess(worker, queue)
    try:
        with Queue(queue, producer) as tasks:
            task = tasks.enqueue("add", a=2, b=3)
            assert task.wait(timeout=20) == 5
            more = tasks.enqueue_many([("echo", {"text": n}) for n in range(5)])
            assert [t.wait(timeout=20) for t in more] == list(range(5))
        info = dothis(monitor, "info", "--queue", queue, "--json")
        assert info.returncode == 0, info.stderr
        (report,) = json.loads(info.stdout)["queues"]
        assert report["succeeded"] == 6 and report["pending"] == 0
        assert [w["queues"] for w in report["workers"]] == [[queue]]
        shown = dothis(monitor, "inspect", task.id, "--queue", queue, "--json")
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["value"] == 5
    finally:
        process.stop()
    assert "NOPERM" not in process.output() and "Traceback" not in process.output()


def test_a_producer_cannot_touch_another_queue(
    make_user: MakeUser, tagged: Callable[[], str], acl_server: RedisServer
) -> None:
    mine, other = tagged(), tagged()
    producer = make_user("producer", mine)
    with Queue(other, producer) as theirs:
        with pytest.raises(PermissionDenied) as refused:
            theirs.enqueue_call("add", {"a": 1, "b": 2}, task_id="x")
        assert f"~{other}:task:*" in str(refused.value) and "EVALSHA" in str(refused.value)
        assert refused.value.code == "permission-denied"
        assert f"~{other}:task:*" in refused.value.rules
        with pytest.raises(PermissionDenied, match=rf"HGETALL .* ~{other}:task:\*"):
            theirs.read_task("x")
    admin = acl_server.client()
    try:
        assert admin.exists(f"{other}:task:x", f"{other}:pending") == 0
    finally:
        admin.close()


def test_a_script_is_held_to_the_same_rules(
    make_user: MakeUser, tagged: Callable[[], str], acl_server: RedisServer
) -> None:
    mine, other = tagged(), tagged()
    client = redis.Redis.from_url(make_user("producer", mine), protocol=2)
    admin = acl_server.client()
    try:
        admin.hset(f"{other}:task:secret", "args", "{}")
        admin.lpush(f"{other}:pending", "secret")
        keys_before = admin.dbsize()
        attempts = [
            ("return redis.call('HGETALL', KEYS[1])", [f"{other}:task:secret"]),
            (f"return redis.call('HGETALL', '{other}:task:secret')", []),
            (f"return redis.call('DEL', '{other}:pending')", []),
            ("return redis.call('LRANGE', KEYS[1], 0, -1)", [f"{mine}:executing"]),
            ("return redis.call('FLUSHALL')", []),
            ("return redis.call('KEYS', '*')", []),
            (f"return redis.call('PUBLISH', '{other}:results', 'x')", []),
        ]
        for script, keys in attempts:
            with pytest.raises(redis.ResponseError, match=r"permission|can't"):
                client.eval(script, len(keys), *keys)
        assert admin.hgetall(f"{other}:task:secret") == {b"args": b"{}"}
        assert admin.dbsize() == keys_before and admin.llen(f"{other}:pending") == 1
    finally:
        client.close()
        admin.close()


def test_a_queue_name_is_literal_in_the_rules(
    make_user: MakeUser, tagged: Callable[[], str]
) -> None:
    tag = tagged()
    star, plain = f"{tag}a*b", f"{tag}aXb"  # the glob a*b would match aXb
    producer = make_user("producer", star)
    with Queue(star, producer) as mine:
        mine.enqueue("add", a=1, b=2)
    with Queue(plain, producer) as theirs, pytest.raises(PermissionDenied):
        theirs.enqueue("add", a=1, b=2)


def test_the_monitor_reads_only(make_user: MakeUser, tagged: Callable[[], str]) -> None:
    queue = tagged()
    monitor = make_user("monitor", queue)
    with Queue(queue, monitor) as tasks:
        with pytest.raises(PermissionDenied, match=r"EVALSHA .*\+evalsha") as refused:
            tasks.enqueue("add", a=1, b=2)
        assert refused.value.rules == ("+evalsha",)
    client = redis.Redis.from_url(monitor, protocol=2)
    try:
        for command in (("LPUSH", f"{queue}:pending", "x"), ("HSET", f"{queue}:task:x", "a", "b"),
                        ("ZADD", "dothis.queues", 1, "x")):  # fmt: skip
            with pytest.raises(redis.exceptions.NoPermissionError):
                client.execute_command(*command)
        assert client.zrange("dothis.queues", 0, -1) is not None
    finally:
        client.close()


def test_the_cli_says_which_rule_is_missing_without_a_traceback(
    make_user: MakeUser, tagged: Callable[[], str]
) -> None:
    mine, other = tagged(), tagged()
    producer, monitor = make_user("producer", mine), make_user("monitor", mine)
    refused = dothis(producer, "enqueue", "add", "--queue", other, "a=1", "b=2")
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: Redis refused a key of EVALSHA in enqueue.lua")
    assert f"~{other}:task:*" in refused.stderr and "Traceback" not in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    refused = dothis(monitor, "enqueue", "add", "--queue", mine, "a=1", "b=2")
    assert refused.returncode == 1 and "+evalsha" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_a_worker_outside_its_queues_stops_with_one_line(
    make_user: MakeUser, tagged: Callable[[], str]
) -> None:
    mine, other = tagged(), tagged()
    process = WorkerProcess(make_user("worker", mine), other)
    try:
        assert process.wait(timeout=20) != 0
    finally:
        process.stop()
    output = process.output()
    assert "error: " in output and f"{other}:worker:" in output
    assert "Traceback" not in output


def test_permission_denied_is_a_dothis_error() -> None:
    assert issubclass(PermissionDenied, DothisError)
