"""Scheduling, priorities at the front, TTLs, dependencies, callbacks, unique ids, cancel,
inspection, eager mode, the @task decorator and retask's API, against a real redis-server."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
import taskfns
from support import wait_until

from dothis import DependencyError, Queue, TaskExists, TaskFailed, TaskNotFound
from dothis.engine.followups import callback_id
from dothis.wire.protocol import Field
from integration.test_producer import as_text, validator

pytestmark = pytest.mark.integration
FAST = {"schedule_ms": 50, "cancel_check_ms": 50}


def test_delay_lands_in_scheduled_and_runs_when_due(queue, r, start_worker) -> None:
    task = queue.enqueue("echo", delay=0.4, text="later")
    assert r.hget(task.key, "state") == b"scheduled"
    due = r.zscore(queue.keys.scheduled, task.id)
    seconds, micros = r.time()  # due times are written on Redis's clock (SPEC.md 9.8)
    assert 0 < due - (seconds * 1000 + micros / 1000) <= 405
    validator("task.schema.json").validate(as_text(r.hgetall(task.key)))
    start_worker(**FAST)
    assert task.wait(timeout=10) == "later"
    info = task.refresh()
    assert info is not None and info.queued_for is not None and info.queued_for >= 0.35


def test_at_a_datetime_and_at_front(queue, r) -> None:
    when = datetime.now(UTC) + timedelta(hours=1)
    later = queue.enqueue("echo", at=when, text="x")
    assert r.zscore(queue.keys.scheduled, later.id) == int(when.timestamp() * 1000)
    first = queue.enqueue("echo", text="first")
    urgent = queue.enqueue("echo", at_front=True, text="urgent")
    assert queue.task_ids() == [urgent.id, first.id]


def test_a_custom_id_is_unique_while_unfinished(queue, r, start_worker) -> None:
    queue.enqueue("echo", task_id="report-42", text="v1")
    with pytest.raises(TaskExists):
        queue.enqueue("echo", task_id="report-42", text="v2")
    start_worker()
    assert queue.fetch("report-42").wait(timeout=10) == "v1"
    again = queue.enqueue("echo", task_id="report-42", text="v3")  # finished: replaced
    assert again.wait(timeout=10) == "v3"
    assert r.hget(again.key, "claims") == b"1"


def test_ttl_expires_a_task_that_waited_too_long(queue, r, start_worker) -> None:
    task = queue.enqueue("echo", ttl=5, text="stale")
    r.hset(task.key, "pending-created", "2020-01-01T00:00:00.000000Z")
    start_worker()
    with pytest.raises(TaskFailed) as caught:
        task.wait(timeout=10)
    assert caught.value.code == "expired" and task.outcome == "expired"
    assert queue.failed() == [task]
    validator("task.schema.json").validate(as_text(r.hgetall(task.key)))


def test_result_and_failure_ttls(queue, r, start_worker) -> None:
    start_worker(result_ttl=100, failure_ttl=200)
    default = queue.enqueue("echo", text="x")
    own = queue.enqueue("echo", result_ttl=30, text="x")
    forever = queue.enqueue("echo", result_ttl=-1, text="x")
    failing = queue.enqueue("fail", message="x")
    for task in (default, own, forever):
        task.wait(timeout=10)
    with pytest.raises(TaskFailed):
        failing.wait(timeout=10)
    assert 90 < r.ttl(default.key) <= 100 and 20 < r.ttl(own.key) <= 30
    assert r.ttl(forever.key) == -1 and 190 < r.ttl(failing.key) <= 200
    # newest first; tasks finished in the same millisecond (one batch) share a score
    assert {t.id for t in queue.succeeded()[:3]} == {forever.id, own.id, default.id}


def test_a_diamond_of_dependencies(queue, r, start_worker) -> None:
    a = queue.enqueue("sleep", seconds=0.3)
    b = queue.enqueue("sleep", seconds=0.5)
    c = queue.enqueue("add", depends_on=[a, b.id], a=1, b=2)
    assert r.hmget(c.key, "state", "waiting-for") == [b"waiting", b"2"]
    assert json.loads(r.hget(c.key, "depends-on")) == [a.id, b.id]
    validator("task.schema.json").validate(as_text(r.hgetall(c.key)))
    start_worker(concurrency=2)
    assert c.wait(timeout=20) == 3
    started = r.hget(c.key, "executing-created").decode()
    assert started > r.hget(a.key, "finished-created").decode()
    assert started > r.hget(b.key, "finished-created").decode()
    assert r.hget(c.key, "claims") == b"1"
    assert not r.exists(queue.keys.dependents(a.id)) and not r.exists(queue.keys.releasing)


def test_a_failed_parent_fails_its_dependents_down_the_chain(queue, r, start_worker) -> None:
    parent = queue.enqueue("fail", message="no")
    child = queue.enqueue("echo", depends_on=parent, text="x")
    grandchild = queue.enqueue("echo", depends_on=child, text="y")
    start_worker()
    for task in (child, grandchild):
        with pytest.raises(TaskFailed) as caught:
            task.wait(timeout=10)
        assert caught.value.code == "dependency-failed"
    with pytest.raises(DependencyError, match="without success"):
        queue.enqueue("echo", depends_on=parent, text="z")
    with pytest.raises(DependencyError, match="does not exist"):
        queue.enqueue("echo", depends_on="no-such-task", text="z")


def test_delete_removes_a_task_and_fails_its_dependents(queue, r, start_worker) -> None:
    """SPEC.md 5.17: a deleted parent leaves no entry behind, and its waiting child fails with
    dependency-failed through the follow-ups; a running task is not deleted."""
    parent = queue.enqueue("echo", text="parent", delay=3600)
    child = queue.enqueue("echo", depends_on=parent, text="child")
    assert parent.delete() == "deleted"
    assert not r.exists(parent.key) and r.zscore(queue.keys.scheduled, parent.id) is None
    with pytest.raises(TaskNotFound):
        parent.delete()
    start_worker()
    with pytest.raises(TaskFailed) as caught:
        child.wait(timeout=10)
    assert caught.value.code == "dependency-failed"
    assert child.delete() == "deleted" and r.zcard(queue.keys.failed) == 0
    running = queue.enqueue("sleep", seconds=2)
    assert running.wait_started(timeout=10)
    assert running.delete() == "running" and r.exists(running.key)


def test_a_dependent_of_a_vanished_parent_fails(queue, r, start_worker) -> None:
    """SPEC.md 5.13: a parent whose hash is gone fails its waiting children, found through the
    index of waiting tasks (the hash deleted) and through <queue>:releasing (the hash expired
    before its follow-ups ran); a parent that succeeded before its child was enqueued and then
    expired fails no one."""
    parent = queue.enqueue("echo", delay=3600, text="never")
    done = queue.enqueue("echo", text="done")  # succeeds before `patient` is enqueued
    gone = queue.enqueue("echo", depends_on=parent, text="x")
    grandchild = queue.enqueue("echo", depends_on=gone, text="y")
    assert r.zscore(queue.keys.waiting, gone.id) == 0
    r.delete(parent.key)  # deleted by hand
    # a finished parent whose hash expired before its follow-ups ran
    ended = queue.enqueue("echo", delay=3600, text="never")
    orphan = queue.enqueue("echo", depends_on=ended, text="z")
    r.delete(ended.key)
    r.sadd(queue.keys.releasing, ended.id)
    r.zrem(queue.keys.waiting, orphan.id)  # so only the follow-ups can find it
    start_worker(reap_ms=100)
    assert done.wait(timeout=10) == "done"
    other = queue.enqueue("echo", delay=3600, text="later")
    patient = queue.enqueue("echo", depends_on=[done, other], text="p")
    r.delete(done.key)  # it had succeeded: the child never waited for it
    for task in (gone, grandchild, orphan):
        with pytest.raises(TaskFailed) as caught:
            task.wait(timeout=10)
        assert caught.value.code == "dependency-failed"
    assert "vanished" in r.hget(gone.key, "error-reason").decode()
    assert r.zscore(queue.keys.waiting, gone.id) is None
    # the patient child was checked (its score moved past 0) and still waits for `other`
    wait_until(lambda: (r.zscore(queue.keys.waiting, patient.id) or 0) > 0, timeout=10)
    assert r.hget(patient.key, "state") == b"waiting"


def test_callbacks_run_as_ordinary_tasks(queue, r, start_worker) -> None:
    start_worker()
    good = queue.enqueue("add", on_success=taskfns.noted, a=2, b=2)
    bad = queue.enqueue("fail", on_failure="noted", message="broke")
    good.wait(timeout=10)
    with pytest.raises(TaskFailed):
        bad.wait(timeout=10)
    # the callback is queued just after the outcome is announced (SPEC.md 5.13), not before
    told = wait_until(lambda: queue.fetch(callback_id(good.id)), timeout=10)
    assert told.wait(timeout=10) == {"id": good.id, "outcome": "successful", "value": 4,
                                     "error": None}  # fmt: skip
    noted = wait_until(lambda: queue.fetch(callback_id(bad.id)), timeout=10)
    assert noted.wait(timeout=10)["error"] == {"code": "exception", "reason": "broke"}
    assert r.hget(told.key, "callback-of") == good.id.encode()


def test_cancel_a_pending_and_a_running_task(queue, r, start_worker) -> None:
    waiting = queue.enqueue("echo", text="never")
    pubsub = r.pubsub()
    pubsub.subscribe(queue.keys.results)
    assert pubsub.get_message(timeout=2)["type"] == "subscribe"
    assert waiting.cancel() == "cancelled"
    assert pubsub.get_message(timeout=5)["data"] == waiting.key.encode()
    assert r.llen(queue.keys.pending) == 0 and waiting.outcome == "cancelled"
    pubsub.close()
    start_worker(**FAST)
    running = queue.enqueue("sleep", seconds=30)
    assert running.wait_started(timeout=10)
    assert running.cancel() == "requested"
    with pytest.raises(TaskFailed) as caught:
        running.wait(timeout=10)
    assert caught.value.code == "cancelled"
    assert waiting.cancel() == "finished"
    assert queue.enqueue("echo", text="next").wait(timeout=10) == "next"


def test_cancel_typed_into_redis_cli_before_the_claim(queue, r, start_worker) -> None:
    task = queue.enqueue("echo", text="x")
    r.hset(task.key, "cancel-requested", "1")
    start_worker()
    with pytest.raises(TaskFailed, match="cancelled"):
        task.wait(timeout=10)


def test_wait_started_and_time_taken(queue, start_worker) -> None:
    task = queue.enqueue("sleep", seconds=0.3)
    assert task.wait_started(timeout=0.05) is False
    start_worker()
    assert task.wait_started(timeout=10) is True
    task.wait(timeout=10)
    info = task.refresh()
    assert info is not None and 0.25 <= info.time_taken < 5


def test_inspection_and_housekeeping(queue, r) -> None:
    tasks = queue.enqueue_many([("echo", {"text": str(i)}) for i in range(5)])
    assert queue.task_ids() == [t.id for t in tasks]
    assert queue.task_ids(start=1, count=2) == [tasks[1].id, tasks[2].id]
    assert queue.tasks(count=1) == [tasks[0]]
    queue.enqueue("echo", delay=60, text="later")
    assert len(queue.scheduled()) == 1
    assert queue.empty() == 5 and len(queue) == 0 and not r.exists(tasks[0].key)
    queue.delete()
    assert r.keys(f"{queue.name}:*") == []


def test_eager_mode_writes_what_a_worker_writes(url, queue_name, r) -> None:
    eager = Queue(queue_name, url, is_async=False)
    pubsub = r.pubsub()
    pubsub.subscribe(eager.keys.results)
    assert pubsub.get_message(timeout=2)["type"] == "subscribe"
    task = eager.enqueue("add", a=1, b=2, on_success="noted")
    assert task.result == 3
    fields = as_text(r.hgetall(task.key))
    validator("task.schema.json").validate(fields)
    assert fields["result"] == "successful" and fields["worker"].startswith("eager-")
    assert 86_000 < r.ttl(task.key) <= 86_400  # the default result-ttl, as a worker applies it
    assert r.keys(eager.keys.worker("*")) == []  # its lease is gone once the task has run
    assert pubsub.get_message(timeout=2)["data"] == task.key.encode()
    assert eager.fetch(callback_id(task.id)).result["value"] == 3
    child = eager.enqueue("echo", depends_on=task, text="after")
    assert child.result == "after"
    with pytest.raises(TaskFailed):
        eager.enqueue("fail", message="x").wait(timeout=1)
    assert r.llen(eager.keys.pending) == 0 and r.llen(eager.keys.executing) == 0
    pubsub.close()
    eager.close()


def test_the_task_decorator(url, queue_name, r, monkeypatch, start_worker) -> None:
    monkeypatch.setenv("DOTHIS_REDIS_URL", url)
    task = taskfns.add_later.delay(3, 4)  # positional arguments bound to a and b
    assert task.queue.name == "dothis"
    fields = as_text(r.hgetall(task.key))
    assert json.loads(fields["args"]) == {"a": 3, "b": 4}
    assert fields["attempts"] == "3" and fields["description"] == "adds with defaults"
    other = taskfns.add_later.enqueue(1, b=1, queue=queue_name, attempts=1)
    assert other.queue.name == queue_name and r.hget(other.key, "attempts") == b"1"
    start_worker()
    assert other.wait(timeout=10) == 2
    assert taskfns.add_later(2, 2) == 4  # still a plain function
    task.queue.delete()  # the shared "dothis" queue: leave nothing for the tests that use it


def test_the_retask_api(url, queue_name, redis_server) -> None:
    from dothis.retask import Queue as RetaskQueue
    from dothis.retask import Task as RetaskTask

    assert RetaskQueue("x", {"port": 1}).connect() is False
    producer = RetaskQueue(queue_name, {"port": redis_server.port})
    consumer = RetaskQueue(queue_name, {"port": redis_server.port})
    assert producer.connect() and consumer.connect()
    job = producer.enqueue(RetaskTask({"user": "kushal", "url": "https://example.com"}))
    assert job.result is None and producer.length == 1
    task = consumer.wait(wait_time=5)
    assert task is not None and task.data["user"] == "kushal"
    assert consumer.dequeue() is None
    assert consumer.send(task, f"received {task.data['user']}")
    assert job.wait(5) and job.result == "received kushal"
    consumer.close()
    producer.close()


def test_periodic_fires_each_occurrence_once_across_three_workers(
    url, queue_name, r, spawn_worker
) -> None:
    workers = [spawn_worker("--worker-id", f"p{i}", modules=("periodic_tasks",))
               for i in range(3)]  # fmt: skip
    wait_until(lambda: r.hget(f"{queue_name}:periodic", "tick"), timeout=15)  # armed
    deadline = time.monotonic() + 4.5
    while time.monotonic() < deadline:
        assert all(w.process.poll() is None for w in workers)
        time.sleep(0.1)  # the run's length itself is the point: occurrences keep coming
    ids = [k.decode().split(":task:", 1)[1] for k in r.keys(f"{queue_name}:task:tick@*")]
    assert len(ids) >= 3
    occurrences = sorted(ids)
    assert len(set(occurrences)) == len(occurrences)
    stamps = [datetime.strptime(i.split("@", 1)[1], "%Y-%m-%dT%H:%M:%S.%fZ") for i in occurrences]
    assert all((b - a).total_seconds() == 1 for a, b in pairwise(stamps))
    wait_until(lambda: all(r.hget(f"{queue_name}:task:{i}", "result") for i in ids), timeout=10)
    for task_id in ids:
        assert r.hmget(f"{queue_name}:task:{task_id}", "claims", "result-value") == [
            b"1", b'"tock"']  # fmt: skip


def test_a_schedule_fires_into_its_own_queue_only(url, queue_name, r, start_worker) -> None:
    """A schedule belongs to one queue: workers serving other queues with the same module do not
    fire it into theirs (each occurrence is fired once overall)."""
    from support import WorkerThread

    from dothis import Registry, Worker, WorkerOptions, periodic

    registry = Registry()
    periodic(1, name="beat", queue=queue_name, registry=registry)(lambda: "tock")
    other = f"{queue_name}-other"
    start_worker(registry=registry)
    elsewhere = WorkerThread(Worker([other, f"{other}-2"], url, registry=registry,
                                    options=WorkerOptions(block_seconds=0.5)))  # fmt: skip
    try:
        wait_until(lambda: len(r.keys(f"{queue_name}:task:beat@*")) >= 2, timeout=15)
    finally:
        elsewhere.stop()
    assert r.keys(f"{other}:*") == [] and r.keys(f"{other}-2:*") == []


def test_a_worker_serves_queues_in_priority_order(url, queue_name, r, start_worker) -> None:
    from support import WorkerThread

    from dothis import Worker, WorkerOptions

    high, low = f"{queue_name}-high", f"{queue_name}-low"
    with Queue(high, url) as urgent, Queue(low, url) as routine:
        slow = routine.enqueue_many([("echo", {"text": f"low {i}"}) for i in range(3)])
        fast = urgent.enqueue_many([("echo", {"text": f"high {i}"}) for i in range(3)])
        worker = Worker([high, low], url, options=WorkerOptions(block_seconds=0.5))
        thread = WorkerThread(worker)
        try:
            for task in (*fast, *slow):
                task.wait(timeout=10)
            started = {t.id: t.refresh().get(Field.EXECUTING_CREATED) for t in (*fast, *slow)}
            assert max(started[t.id] for t in fast) < min(started[t.id] for t in slow)
            assert r.exists(f"{high}:worker:{worker.id}") and r.exists(f"{low}:worker:{worker.id}")
            late = routine.enqueue("echo", text="low, while idle")
            assert late.wait(timeout=5) == "low, while idle"
        finally:
            thread.stop()
