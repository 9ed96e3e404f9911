from __future__ import annotations

import json
import re

import pytest
import redis
from jsonschema import Draft202012Validator
from referencing import Registry as SchemaRegistry
from referencing import Resource
from support import SCHEMA

from dothis import Call, InvalidArguments, Queue, QueueClosed, TaskExists

pytestmark = pytest.mark.integration
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def validator(name: str) -> Draft202012Validator:
    resources = [
        (json.loads(path.read_text())["$id"], Resource.from_contents(json.loads(path.read_text())))
        for path in SCHEMA.glob("*.schema.json")
    ]
    registry = SchemaRegistry().with_resources(resources)
    schema = json.loads((SCHEMA / name).read_text())
    return Draft202012Validator(
        schema, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def as_text(raw: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in raw.items()}


@pytest.fixture
def queue(url: str, queue_name: str):
    with Queue(queue_name, url) as q:
        yield q


def test_enqueue_writes_the_hash_and_the_pending_entry(queue: Queue, r: redis.Redis) -> None:
    task = queue.enqueue("echo", text="ooh yeeah")
    fields = as_text(r.hgetall(task.key))
    assert fields.keys() == {"function", "state", "args", "pending-created"}
    assert fields["function"] == "echo" and fields["state"] == "pending"
    assert json.loads(fields["args"]) == {"text": "ooh yeeah"}
    assert TIMESTAMP.fullmatch(fields["pending-created"])
    assert r.lrange(queue.keys.pending, 0, -1) == [task.id.encode()]
    assert task.key == f"{queue.name}:task:{task.id}"
    validator("task.schema.json").validate(fields)
    assert task.state == "pending" and task.outcome is None and task.result is None


def test_enqueue_accepts_a_registered_callable(queue: Queue) -> None:
    from dothis.examples import add

    task = queue.enqueue(add, a=1, b=2)
    info = task.refresh()
    assert info is not None and info.function == "add"


def test_custom_id_and_task_exists(queue: Queue, r: redis.Redis) -> None:
    task = queue.enqueue_call("echo", {"text": "a"}, task_id="order-42:mail")
    assert task.id == "order-42:mail"
    with pytest.raises(TaskExists, match="order-42:mail"):
        queue.enqueue("echo", task_id="order-42:mail", text="b")
    assert json.loads(r.hget(task.key, "args")) == {"text": "a"}
    assert len(queue) == 1


@pytest.mark.parametrize("bad_id", ["", "two words", "x" * 300, "tab\t"])
def test_invalid_custom_ids_are_refused(queue: Queue, bad_id: str) -> None:
    with pytest.raises(InvalidArguments):
        queue.enqueue("echo", task_id=bad_id, text="x")


def test_args_without_json_form_name_the_field(queue: Queue, r: redis.Redis) -> None:
    with pytest.raises(InvalidArguments, match="'when'"):
        queue.enqueue("echo", when=object())
    with pytest.raises(InvalidArguments, match="'ratio'"):
        queue.enqueue("echo", ratio=float("nan"))
    assert r.llen(queue.keys.pending) == 0


def test_enqueue_many(queue: Queue, r: redis.Redis) -> None:
    calls = [("add", {"a": i, "b": 1}) for i in range(2500)] + [Call("echo", {"text": "x"}, "mine")]
    tasks = queue.enqueue_many(calls)
    assert len(tasks) == 2501 and len(queue) == 2501
    assert tasks[-1].id == "mine"
    assert json.loads(r.hget(tasks[7].key, "args")) == {"a": 7, "b": 1}
    assert r.lindex(queue.keys.pending, -1) == tasks[0].id.encode()  # FIFO: first out first


def test_fetch(queue: Queue) -> None:
    task = queue.enqueue("echo", text="x")
    assert queue.fetch(task.id) == task
    assert queue.fetch("no-such-task") is None


def test_closed_queue(url: str, queue_name: str) -> None:
    queue = Queue(queue_name, url)
    queue.close()
    with pytest.raises(QueueClosed, match="closed"):
        queue.enqueue("echo", text="x")


def test_invalid_queue_name(url: str) -> None:
    with pytest.raises(InvalidArguments, match="queue name"):
        Queue("my queue", url)


def test_an_id_in_full_key_form_is_refused(queue: Queue) -> None:
    with pytest.raises(InvalidArguments, match="full-key form"):
        queue.enqueue("echo", task_id=f"{queue.name}:task:x", text="x")
