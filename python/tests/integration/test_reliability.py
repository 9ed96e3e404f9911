"""Retries with backoff, manual retries, timeouts, crashed children and the failed registry."""

from __future__ import annotations

import time
import uuid

import pytest
import redis
import taskfns
from support import wait_until

from dothis import Queue, TaskFailed
from integration.test_producer import as_text, validator

pytestmark = pytest.mark.integration
FAST_RETRIES = {"retry_base_ms": 50, "retry_max_ms": 200, "schedule_ms": 50}


@pytest.fixture
def queue(url: str, queue_name: str):
    with Queue(queue_name, url) as q:
        yield q


def test_a_failing_task_is_retried_until_it_succeeds(queue, r, url, start_worker) -> None:
    start_worker(**FAST_RETRIES)
    counter = f"counter-{uuid.uuid4()}"
    task = queue.enqueue(taskfns.flaky, attempts=3, url=url, key=counter, succeed_on=3)
    assert task.wait(timeout=20) == 3
    fields = as_text(r.hgetall(task.key))
    assert fields["retries"] == "2" and fields["claims"] == "3"
    assert fields["result"] == "successful"
    assert r.zcard(queue.keys.scheduled) == 0 and r.zcard(queue.keys.failed) == 0


def test_a_scheduled_retry_shows_no_outcome_yet(queue, r, url, start_worker) -> None:
    start_worker(retry_base_ms=60_000, retry_max_ms=60_000)
    task = queue.enqueue(taskfns.flaky, attempts=2, url=url, key=f"c-{uuid.uuid4()}",
                         succeed_on=9)  # fmt: skip
    wait_until(lambda: r.hget(task.key, "state") == b"scheduled", timeout=10)
    fields = as_text(r.hgetall(task.key))
    assert r.hmget(task.key, "result", "result-value") == [None, None]
    assert fields["error-code"] == "exception" and fields["error-reason"] == "try 1 fails"
    validator("task.schema.json").validate(fields)
    due = r.zscore(queue.keys.scheduled, task.id)
    assert 30_000 <= due - time.time() * 1000 <= 60_000  # equal jitter: half to all of the base


def test_attempts_run_out_into_the_failed_registry_and_requeue(queue, r, url, start_worker):
    start_worker(**FAST_RETRIES)
    counter = f"counter-{uuid.uuid4()}"
    task = queue.enqueue(taskfns.flaky, attempts=2, url=url, key=counter, succeed_on=4)
    with pytest.raises(TaskFailed) as caught:
        task.wait(timeout=20)
    assert caught.value.code == "exception" and caught.value.reason == "try 2 fails"
    assert queue.failed() == [task]
    assert r.hget(task.key, "retries") == b"1"
    assert queue.requeue(task.id) is True
    assert queue.requeue(task.id) is False
    assert r.hmget(task.key, "result", "retries", "error-code") == [None, None, None]
    assert task.wait(timeout=20) == 4  # tries 3 and 4: the requeued task has its attempts again
    assert queue.failed() == []


def test_retry_from_inside_a_task(queue, r, start_worker) -> None:
    start_worker(schedule_ms=50)
    task = queue.enqueue_call(taskfns.retry_later, {"delay": 0.2}, attempts=2)
    wait_until(lambda: r.hget(task.key, "state") == b"scheduled", timeout=10)
    assert r.hget(task.key, "error-reason") == b"not ready yet"
    with pytest.raises(TaskFailed, match="retry requested after the last of 2"):
        task.wait(timeout=10)


@pytest.mark.parametrize("pool", ["process", "thread"])
def test_timeout_stops_a_try_and_the_worker_goes_on(queue, r, start_worker, pool) -> None:
    start_worker(pool=pool, **FAST_RETRIES)
    slow = queue.enqueue(taskfns.spin, timeout=0.3, attempts=2, seconds=3)
    with pytest.raises(TaskFailed) as caught:
        slow.wait(timeout=20)
    assert caught.value.code == "timeout"
    assert r.hget(slow.key, "retries") == b"1"
    assert queue.enqueue("echo", text="next").wait(timeout=10) == "next"


def test_a_try_that_kills_its_process_is_crashed_and_the_worker_goes_on(queue, start_worker):
    start_worker(concurrency=2)
    with pytest.raises(TaskFailed) as caught:
        queue.enqueue(taskfns.die, status=3).wait(timeout=20)
    assert caught.value.code == "crashed" and "exited with status 3" in caught.value.reason
    assert queue.enqueue("add", a=1, b=1).wait(timeout=10) == 2


def test_a_worker_default_timeout(queue, start_worker) -> None:
    start_worker(timeout=0.3)
    with pytest.raises(TaskFailed) as caught:
        queue.enqueue("sleep", seconds=5).wait(timeout=20)
    assert caught.value.code == "timeout"


def test_an_entry_added_to_scheduled_by_hand_runs_when_due(queue, r: redis.Redis, start_worker):
    start_worker(schedule_ms=50)
    key = queue.keys.task("later")
    r.hset(key, mapping={"function": "echo", "state": "scheduled", "args": '{"text": "due"}'})
    r.zadd(queue.keys.scheduled, {"later": int(time.time() * 1000) + 300})
    wait_until(lambda: r.hget(key, "result"), timeout=10)
    assert r.hget(key, "result-value") == b'"due"'
    assert r.zcard(queue.keys.scheduled) == 0


def test_bad_options_fail_without_running(queue, r, start_worker) -> None:
    start_worker()
    key = queue.keys.task("opt")
    r.hset(key, mapping={"function": "echo", "args": '{"text": "x"}', "attempts": "lots"})
    r.lpush(queue.keys.pending, "opt")
    wait_until(lambda: r.hget(key, "result"), timeout=10)
    assert r.hget(key, "error-code") == b"invalid-field"
    assert r.zrange(queue.keys.failed, 0, -1) == [b"opt"]
