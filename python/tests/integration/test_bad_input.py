"""Everything a redis-cli user can type wrong ends as a documented outcome; the worker stays up
and the other tasks finish."""

from __future__ import annotations

import json

import pytest
import redis
from support import wait_until

from dothis import Queue
from integration.test_producer import validator

pytestmark = pytest.mark.integration


def raw_task(r: redis.Redis, queue: Queue, task_id: str, **fields: str | bytes) -> str:
    key = queue.keys.task(task_id)
    r.hset(key, mapping={k.replace("_", "-"): v for k, v in fields.items()})
    r.lpush(queue.keys.pending, task_id)
    return key


def outcome(r: redis.Redis, key: str) -> dict[str, str]:
    wait_until(lambda: r.hget(key, "result"), timeout=10)
    fields = {k.decode(): v.decode("utf-8", "replace") for k, v in r.hgetall(key).items()}
    return fields


BAD = [
    ({"function": "echo", "state": "pending", "args": "{not json"}, "malformed-args"),
    ({"function": "echo", "state": "pending", "args": '["ooh"]'}, "args-not-object"),
    ({"state": "pending", "args": '{"text": "x"}'}, "missing-function"),
    (
        {"function": "os.system", "state": "pending", "args": '{"command": "true"}'},
        "unknown-function",
    ),
    ({"function": "echo", "state": "bogus", "args": '{"text": "x"}'}, "invalid-state"),
    (
        {"function": "echo", "state": "pending", "args": '{"text": "' + "x" * 5000 + '"}'},
        "too-large",
    ),
    ({"function": "add", "state": "pending", "args": '{"a": 1}'}, "bad-arguments"),
    ({"function": "echo", "state": "pending", "args": b'{"text": "\xff"}'}, "invalid-encoding"),
    (
        {"function": "echo", "state": "pending", "args": '{"text": "x"}', "protocol": "9"},
        "unsupported-protocol",
    ),
]


@pytest.mark.parametrize(("fields", "code"), BAD, ids=[code for _, code in BAD])
def test_bad_task_fails_with_its_code_and_the_next_task_runs(
    queue, r, start_worker, fields, code
) -> None:
    start_worker(max_value_bytes=4096)
    key = raw_task(r, queue, "bad", **fields)
    good = queue.enqueue("echo", text="still here")
    result = outcome(r, key)
    assert result["result"] == "failed" and result["error-code"] == code
    assert result["error-reason"]
    if code != "invalid-encoding":
        validator("task.schema.json").validate(result)
    assert good.wait(timeout=10) == "still here"
    assert r.llen(queue.keys.executing) == 0


def rejected(r: redis.Redis, queue: Queue) -> list[dict[str, str]]:
    return [json.loads(item) for item in r.lrange(queue.keys.rejected, 0, -1)]


@pytest.mark.parametrize(
    ("setup", "entry", "code"),
    [
        (lambda r, q: None, "nohash", "missing-hash"),
        (lambda r, q: r.set(q.keys.task("astring"), "x"), "astring", "wrong-type"),
        (lambda r, q: r.rpush(q.keys.task("alist"), "x"), "alist", "wrong-type"),
        (lambda r, q: None, "has space", "invalid-id"),
        (lambda r, q: None, "x" * 100_000, "invalid-id"),
        (lambda r, q: None, b"\xff\xfe", "invalid-id"),
    ],
    ids=["missing-hash", "string-key", "list-key", "space", "huge-id", "non-utf8"],
)
def test_entries_without_a_usable_hash_are_rejected(
    queue, r, start_worker, setup, entry, code
) -> None:
    start_worker()
    setup(r, queue)
    r.lpush(queue.keys.pending, entry)
    good = queue.enqueue("echo", text="after")
    assert good.wait(timeout=10) == "after"
    records = wait_until(lambda: rejected(r, queue), timeout=5)
    assert records[0]["error-code"] == code
    validator("rejected.schema.json").validate(records[0])
    assert r.llen(queue.keys.executing) == 0
    if code == "wrong-type":
        assert r.type(queue.keys.task(entry)) in (b"string", b"list")  # not touched


def test_the_same_id_pushed_twice_runs_once(queue, r, start_worker) -> None:
    key = raw_task(r, queue, "twice", function="add", state="pending", args='{"a": 1, "b": 2}')
    r.lpush(queue.keys.pending, "twice")
    start_worker()
    assert outcome(r, key)["claims"] == "1"
    good = queue.enqueue("echo", text="x")
    assert good.wait(timeout=10) == "x"
    assert r.llen(queue.keys.executing) == 0 and r.llen(queue.keys.pending) == 0
    assert r.hget(key, "claims") == b"1"


def test_full_key_form_entry(queue, r, start_worker) -> None:
    key = queue.keys.task("full")
    r.hset(key, mapping={"function": "echo", "state": "pending", "args": '{"text": "full"}'})
    r.lpush(queue.keys.pending, key)
    start_worker()
    assert outcome(r, key)["result-value"] == '"full"'


def test_a_finished_hash_pushed_again_is_untouched(queue, r, start_worker) -> None:
    start_worker()
    task = queue.enqueue("echo", text="once")
    assert task.wait(timeout=10) == "once"
    before = r.hgetall(task.key)
    r.lpush(queue.keys.pending, task.id)
    assert queue.enqueue("echo", text="next").wait(timeout=10) == "next"
    assert r.hgetall(task.key) == before
