"""Outcome messages (SPEC.md 6.1): a wait on a task enqueued here takes the outcome from the
message of its task on <queue>:outcomes, with no read of the hash; and nothing depends on it: a
wait whose outcome message does not come (a server that refuses the channel, a message that does
not parse) reads the hash as before."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import redis
import taskfns  # noqa: F401  (registers echo and fail for the worker)
from support import RedisServer, wait_until

from dothis import Queue, TaskFailed, WaitTimeout
from dothis.producer.queue import Queue as QueueClass
from dothis.wire.protocol import Keys

pytestmark = pytest.mark.integration


def counting_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    reads: list[str] = []
    read = QueueClass.read_outcome

    def counted(self: Queue, task_id: str) -> Any:
        reads.append(task_id)
        return read(self, task_id)

    monkeypatch.setattr(QueueClass, "read_outcome", counted)
    return reads


def subscribers(r: redis.Redis, channel: str) -> int:
    return int(dict(r.pubsub_numsub(channel))[channel.encode()])  # type: ignore[no-untyped-call]


def test_a_wait_takes_the_outcome_from_its_message_without_reading_the_hash(
    r: redis.Redis, queue: Queue, start_worker: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    start_worker()
    assert queue.enqueue("echo", text="warm").wait(timeout=10) == "warm"  # subscribed from here
    wait_until(lambda: subscribers(r, queue.keys.outcomes) == 1)
    reads = counting_reads(monkeypatch)
    values = [queue.enqueue("echo", text={"n": n}).wait(timeout=10) for n in range(20)]
    assert values == [{"n": n} for n in range(20)]
    with pytest.raises(TaskFailed) as failed:
        queue.enqueue("fail", message="it broke").wait(timeout=10)
    assert failed.value.code == "exception" and "it broke" in str(failed.value)
    assert "RuntimeError" in (failed.value.exception or "")
    assert reads == []


def test_a_task_with_an_id_of_its_own_is_read_from_its_hash(
    queue: Queue, start_worker: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its key may have had an earlier task (an id used again once it finished): an outcome
    # message for the key could be that task's, so the wait reads the hash.
    start_worker()
    assert queue.enqueue("echo", text="warm").wait(timeout=10) == "warm"
    reads = counting_reads(monkeypatch)
    task = queue.enqueue("echo", text="mine", task_id="my-own-id")
    assert task.wait(timeout=10) == "mine"
    assert reads and set(reads) == {"my-own-id"}


def test_a_wait_whose_outcome_message_does_not_parse_reads_the_hash(
    r: redis.Redis, queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The worker's side by hand: a broken outcome message, then the outcome and its results
    # message, as a worker of an earlier revision (or a foreign one) might leave it.
    task = queue.enqueue("echo", text="x")
    keys = Keys(queue.name)
    reads = counting_reads(monkeypatch)

    def finish() -> None:
        wait_until(lambda: subscribers(r, keys.outcomes) == 1)
        r.publish(keys.outcomes, b'{"task": "' + keys.task(task.id).encode() + b'", "res')
        r.hset(keys.task(task.id), mapping={"state": "finished", "result": "successful",
                                            "result-value": json.dumps("by hand")})  # fmt: skip
        r.publish(keys.results, keys.task(task.id))

    import threading

    finisher = threading.Thread(target=finish)
    finisher.start()
    assert task.wait(timeout=10) == "by hand"
    finisher.join(5)
    assert task.id in reads


def test_a_server_that_refuses_the_outcomes_channel_leaves_waits_to_the_hash(
    redis_server: RedisServer, queue_name: str, start_worker: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    # A producer user written before outcome messages: no &<queue>:outcomes. Its subscription
    # to the results channel stands, and every wait ends with a read of the hash.
    admin = redis.Redis(port=redis_server.port)
    keys = Keys(queue_name)
    admin.execute_command(
        "ACL",
        "SETUSER",
        "oldproducer",
        "on",
        ">pw",
        "resetchannels",
        f"&{keys.results}",
        f"&{keys.progress}",
        "~*",
        "+@all",
    )
    try:
        start_worker()
        url = f"redis://oldproducer:pw@127.0.0.1:{redis_server.port}/0"
        reads = counting_reads(monkeypatch)
        with Queue(queue_name, url) as old:
            assert [old.enqueue("echo", text=n).wait(timeout=10) for n in range(3)] == [0, 1, 2]
            assert subscribers(admin, keys.results) == 1  # the refusal cost nothing else
            assert old.results.subscriptions == 1
        assert len(reads) >= 3
        assert subscribers(admin, keys.outcomes) == 0
    finally:
        admin.execute_command("ACL", "DELUSER", "oldproducer")
        admin.close()


def test_a_wait_after_an_ending_seen_does_not_take_an_outcome_message(
    r: redis.Redis, queue: Queue, start_worker: Callable[..., Any]
) -> None:
    # The task ended (and a wait saw it), then it was requeued: messages of that ending may still
    # be unread when the next wait starts. That wait reads the hash: here it finds the task
    # pending (no worker runs any more) and times out, whatever an outcome message says.
    worker = start_worker()
    task = queue.enqueue("fail", message="first run")
    with pytest.raises(TaskFailed):
        task.wait(timeout=10)
    worker.stop()
    assert queue.requeue(task.id) is True
    keys = Keys(queue.name)
    stale = json.dumps({"task": keys.task(task.id), "result": "failed", "error-code": "exception",
                        "error-reason": "first run", "error-exception": "stale"})  # fmt: skip

    import threading

    def announce() -> None:
        wait_until(lambda: subscribers(r, keys.outcomes) == 1)
        r.publish(keys.outcomes, stale)
        r.publish(keys.results, keys.task(task.id))

    announcer = threading.Thread(target=announce)
    announcer.start()
    with pytest.raises(WaitTimeout):
        task.wait(timeout=0.5)
    announcer.join(5)
