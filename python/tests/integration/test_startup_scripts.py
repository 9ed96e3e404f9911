"""A producer registers each Lua script at its first use, and a script missing from Redis's
cache (a restarted server, SCRIPT FLUSH) is loaded again by the call that meets NOSCRIPT."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from dothis import Queue
from dothis.store.scripts import NAMES, source

pytestmark = pytest.mark.integration


def pending(r: redis.Redis, queue_name: str) -> set[str]:
    return {raw.decode() for raw in r.lrange(f"{queue_name}:pending", 0, -1)}


def test_a_producer_registers_only_the_scripts_it_runs(queue: Any) -> None:
    assert dict(queue.store.scripts) == {}  # nothing read or hashed by Queue()
    queue.enqueue("echo", text="x")
    assert set(queue.store.scripts) == {"enqueue"}
    with pytest.raises(KeyError):
        queue.store.scripts["no-such-script"]


def test_a_flushed_script_is_loaded_again(queue: Any, r: redis.Redis, queue_name: str) -> None:
    first = queue.enqueue("echo", text="a")
    sha = queue.store.scripts["enqueue"].sha
    r.script_flush()
    assert r.script_exists(sha) == [False]
    second = queue.enqueue("echo", text="b")  # NOSCRIPT, SCRIPT LOAD, EVALSHA again
    assert r.script_exists(sha) == [True]
    assert pending(r, queue_name) == {first.id, second.id}

    r.script_flush()  # a pipeline of script calls
    more = queue.enqueue_many([("echo", {"text": "c"}), ("echo", {"text": "d"})])
    assert pending(r, queue_name) == {first.id, second.id, *(task.id for task in more)}

    r.script_flush()  # a script this producer had not run yet, first run on an empty cache
    assert queue.cancel(first.id) == "cancelled"
    assert r.hget(f"{queue_name}:task:{first.id}", "result") == b"cancelled"


def test_a_new_producer_on_an_empty_script_cache(url: str, r: redis.Redis, queue_name: str) -> None:
    r.script_flush()
    with Queue(queue_name, url) as queue:
        task = queue.enqueue("echo", text="x")
    assert pending(r, queue_name) == {task.id}


def test_each_script_source_is_read_once() -> None:
    assert all(source(name) is source(name) for name in NAMES)
    with pytest.raises(KeyError):
        source("no-such-script")
