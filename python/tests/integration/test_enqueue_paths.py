"""The producer's two ways of writing a task, a plain call (no option, no custom id) and one with
options, write what the protocol asks for, alone and mixed in one ``enqueue_many``."""

from __future__ import annotations

import json
import re
import uuid

import pytest
import redis

from dothis import Call, DependencyError, InvalidArguments, Queue, Registry, TaskExists
from dothis.wire.clock import parse_iso

pytestmark = pytest.mark.integration
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
BASE = {"function", "state", "args", "pending-created"}


def fields_of(r: redis.Redis, key: str) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in r.hgetall(key).items()}


@pytest.fixture
def queue(url: str, queue_name: str):
    with Queue(queue_name, url) as q:
        yield q


def test_a_plain_enqueue_writes_the_base_fields(queue: Queue, r: redis.Redis) -> None:
    task = queue.enqueue("noop")
    assert uuid.UUID(task.id).version == 4
    fields = fields_of(r, task.key)
    assert fields.keys() == BASE
    assert (fields["function"], fields["state"], fields["args"]) == ("noop", "pending", "{}")
    assert TIMESTAMP.fullmatch(fields["pending-created"])
    assert r.lrange(queue.keys.pending, 0, -1) == [task.id.encode()]
    same = queue.enqueue_call("noop")
    assert fields_of(r, same.key).keys() == BASE


def test_options_left_at_their_defaults_write_nothing_more(queue: Queue, r: redis.Redis) -> None:
    task = queue.enqueue("echo", at_front=False, text="x")
    assert fields_of(r, task.key).keys() == BASE
    first = queue.enqueue("echo", attempts=3, timeout=1.5, description="d", text="y")
    fields = fields_of(r, first.key)
    assert (fields["attempts"], fields["timeout"], fields["description"]) == ("3", "1.5", "d")
    front = queue.enqueue("echo", at_front=True, text="z")
    assert r.lindex(queue.keys.pending, -1) == front.id.encode()  # the next to run


def test_enqueue_many_mixes_plain_calls_and_calls_with_options(
    queue: Queue, r: redis.Redis
) -> None:
    parent = queue.enqueue("noop")
    calls = [
        Call("noop"),
        ("add", {"a": 1, "b": 2}),
        Call("echo", {"text": "x"}, "mine"),
        Call("echo", {"text": "y"}, options={"attempts": 2, "ttl": 60}),
        Call("echo", {"text": "z"}, options={"depends_on": parent}),
        Call("echo", {"text": "later"}, options={"delay": 3600}),
        Call("noop", {}),
    ]
    tasks = queue.enqueue_many(calls)
    assert [t.id for t in tasks][2] == "mine"
    plain, added, mine, tried, child, later, last = (fields_of(r, t.key) for t in tasks)
    assert plain.keys() == BASE and last.keys() == BASE and mine.keys() == BASE
    assert json.loads(added["args"]) == {"a": 1, "b": 2} and added.keys() == BASE
    assert (tried["attempts"], tried["ttl"]) == ("2", "60")
    assert child["state"] == "waiting" and json.loads(child["depends-on"]) == [parent.id]
    assert later["state"] == "scheduled" and "scheduled-for" in later
    pending = [entry.decode() for entry in r.lrange(queue.keys.pending, 0, -1)]
    assert pending == [tasks[i].id for i in (6, 3, 2, 1, 0)] + [parent.id]
    assert r.zscore(queue.keys.scheduled, tasks[5].id) is not None
    assert r.smembers(queue.keys.dependents(parent.id)) == {tasks[4].id.encode()}


def test_enqueue_many_over_batches_keeps_order_and_times(queue: Queue, r: redis.Redis) -> None:
    tasks = queue.enqueue_many([Call("noop") for _ in range(2345)])
    assert len({t.id for t in tasks}) == 2345 and len(queue) == 2345
    assert r.lrange(queue.keys.pending, 0, -1) == [t.id.encode() for t in reversed(tasks)]
    created = [r.hget(t.key, "pending-created").decode() for t in [*tasks[::100], tasks[-1]]]
    assert all(TIMESTAMP.fullmatch(text) for text in created)
    assert created == sorted(created, key=parse_iso)


@pytest.mark.parametrize(
    "bad",
    [Call("echo", {"x": object()}), Call("echo", task_id="two words"), Call(""),
     Call("echo", options={"attempts": 0}), Call("echo", options={"delay": 1, "at_front": True}),
     ("echo", ["not", "a", "mapping"])],
)  # fmt: skip
def test_enqueue_many_checks_every_call_before_writing(
    queue: Queue, r: redis.Redis, bad: Call
) -> None:
    with pytest.raises(InvalidArguments):
        queue.enqueue_many([Call("noop") for _ in range(1500)] + [bad])
    assert r.keys(f"{queue.name}:*") == []


def test_a_taken_id_raises_after_the_others_are_queued(queue: Queue) -> None:
    queue.enqueue("noop", task_id="taken")
    with pytest.raises(TaskExists, match="taken"):
        queue.enqueue_many([Call("noop"), Call("noop", task_id="taken"), Call("noop")])
    assert len(queue) == 3


def test_a_missing_parent_raises_after_the_others_are_queued(queue: Queue) -> None:
    with pytest.raises(DependencyError, match="does not exist"):
        queue.enqueue_many([Call("noop"), Call("noop", options={"depends_on": "nobody"})])
    assert len(queue) == 1


def test_eager_enqueue_many_runs_plain_calls(url: str, queue_name: str) -> None:
    registry = Registry()
    ran: list[int] = []
    registry.add(lambda n=0: ran.append(n) or n, name="note")
    with Queue(queue_name, url, is_async=False, registry=registry) as eager:
        tasks = eager.enqueue_many([Call("note"), Call("note", {"n": 2}),
                                    Call("note", {"n": 3}, options={"delay": 60})])  # fmt: skip
        assert ran == [0, 2, 3]
        assert [t.result for t in tasks] == [0, 2, 3]
        assert eager.enqueue("note", n=4).result == 4
