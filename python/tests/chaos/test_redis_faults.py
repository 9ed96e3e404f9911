"""Scenario 3: Redis hangs and drops connections while tasks flow.

Faults: redis-server SIGSTOPped for a few seconds then SIGCONTed; ``CLIENT PAUSE 2000 ALL``;
``CLIENT KILL TYPE normal`` and ``CLIENT KILL TYPE pubsub``. Required: nothing lost, no worker
process exits, every task finishes. Also: a producer fails fast, naming the URL, when Redis is
down; and a waiter whose results subscription is killed still gets its value.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from chaos.checker import Row
from chaos.harness import Producer, Watch, poll, recovery_bound, size, wait_all_finished
from dothis import ConnectionFailed, Queue, Task

pytestmark = pytest.mark.chaos

TIMING = ("--lease-ms", "1000", "--heartbeat-ms", "250", "--reap-ms", "250",
          "--max-claims", "20", "--concurrency", "2")  # fmt: skip
STOP_SECONDS = 3.0


def freeze(server: Any, admin: redis.Redis) -> str:
    server.freeze()
    time.sleep(STOP_SECONDS)  # the fault's own duration
    server.thaw()
    return f"SIGSTOP {STOP_SECONDS:.0f} s"


def pause(server: Any, admin: redis.Redis) -> str:
    admin.execute_command("CLIENT", "PAUSE", 2000, "ALL")
    return "CLIENT PAUSE 2000 ALL"


def kill_clients(server: Any, admin: redis.Redis) -> str:
    killed = 0
    for _ in range(3):
        killed += int(admin.execute_command("CLIENT", "KILL", "TYPE", "normal"))
        killed += int(admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub"))
        time.sleep(0.3)  # spacing between the kills: part of the fault schedule
    return f"CLIENT KILL x3 ({killed} conns)"


FAULTS: dict[str, Callable[[Any, redis.Redis], str]] = {
    "sigstop": freeze,
    "client-pause": pause,
    "client-kill": kill_clients,
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_redis_hangs_and_drops(server, client, queue_name, history, fleets, table, fault):
    tasks, window = size(200, 1000), size(3.0, 8.0)
    began = time.monotonic()
    fleet = fleets(server.url, queue_name, *TIMING, log=history.log).start(2)
    fleet.wait_registered(client, timeout=30)
    watch = Watch(server.port, queue_name, history, fleet.alive).start()
    producer = Producer(server.url, queue_name, history, tasks, window, prefix=fault[:1]).start()
    # a waiter on a results subscription, so that TYPE pubsub has someone to kill
    waited: dict[str, Any] = {}
    waiter = threading.Thread(target=wait_for_last, daemon=True,
                              args=(server.url, queue_name, producer, tasks, waited))  # fmt: skip
    waiter.start()
    time.sleep(max(0.0, producer.began + window / 3 - time.monotonic()))  # fault schedule
    admin = server.client()
    fault_at = time.monotonic()
    described = FAULTS[fault](server, admin)
    lasted = time.monotonic() - fault_at + (2.0 if fault == "client-pause" else 0.0)
    admin.close()
    producer.join()
    wait_all_finished(history, client, queue_name, timeout=size(60, 120), fleet=fleet)
    waiter.join(timeout=60)
    stuck_bound = recovery_bound(1000, 250, run=0.02, fault=lasted)
    verdict = history.check(client, queue_name, spans=watch.stop(), bound=stuck_bound)
    leftovers = client.llen(f"{queue_name}:executing") + client.llen(f"{queue_name}:pending")
    ok = verdict.ok and not leftovers and "value" in waited
    row = table(Row.from_verdict(f"3 redis {fault}", described, verdict, None,
                                 time.monotonic() - began))  # fmt: skip
    row.verdict = "pass" if ok else "FAIL"
    row.notes.append(f"{verdict.summary()}; enqueue errors retried: {history.enqueue_errors}")
    fleet.check_alive()
    assert not verdict.lost, verdict.summary()
    assert not verdict.unexpected, verdict.summary()
    assert not verdict.stuck, verdict.summary()
    assert not leftovers
    assert waited.get("value") == f"{fault[:1]}{tasks - 1:05d}", waited
    fleet.stop_cleanly()


def wait_for_last(url: str, queue_name: str, producer: Producer, tasks: int, out: dict) -> None:
    """Task.wait on the last task of the run, through whatever the fault does."""
    token = f"{producer.prefix}{tasks - 1:05d}"
    try:
        with Queue(queue_name, url) as queue:
            out["value"] = Task(queue, token).wait(timeout=size(90, 180))
    except BaseException as error:
        out["error"] = repr(error)


def test_producer_fails_fast_naming_the_url_when_redis_is_down(servers, queue_name, table):
    began = time.monotonic()
    down = servers()
    down.kill()
    with Queue(queue_name, down.url) as queue:
        started = time.monotonic()
        with pytest.raises(ConnectionFailed) as raised:
            queue.enqueue("echo", text="nobody listens")
        took = time.monotonic() - started
    ok = down.url in str(raised.value) and took < 2.0
    table(Row("3 producer, redis down", "redis killed", 1, "-", "-", "-",
              time.monotonic() - began, "pass" if ok else "FAIL",
              [f"ConnectionFailed after {took:.3f} s: {raised.value}"]))  # fmt: skip
    assert down.url in str(raised.value)
    assert took < 2.0, f"the producer took {took:.1f} s to fail"


def test_waiter_gets_a_result_published_while_its_subscription_was_dead(
    server, client, queue_name, table
):
    """The outcome and its message land while the subscription is killed, so the message is
    lost; the waiter must read the hash again once it has resubscribed."""
    began = time.monotonic()
    from dothis.store.connection import connect

    control = connect(server.url).pubsub()  # no automatic reconnect, like the waiter's
    control.subscribe(f"{queue_name}:results")
    assert control.get_message(timeout=5)["type"] == "subscribe"
    with Queue(queue_name, server.url) as queue:  # no worker serves this queue
        task = queue.enqueue("echo", text="x")
        out: dict[str, Any] = {}

        def wait() -> None:
            try:
                out["value"] = task.wait(timeout=30)
            except BaseException as error:
                out["error"] = repr(error)

        waiter = threading.Thread(target=wait, daemon=True)
        waiter.start()
        poll(lambda: len(client.client_list(_type="pubsub")) >= 2, timeout=10)
        pipe = client.pipeline(transaction=True)  # MULTI: the kill, then the outcome + message
        pipe.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        outcome = {"state": "finished", "result-value": '"published"', "result": "successful",
                   "finished-created": "2015-12-05T00:19:01.835429Z"}  # fmt: skip
        pipe.hset(task.key, mapping=outcome)
        pipe.publish(f"{queue_name}:results", task.key)
        killed, _, receivers = pipe.execute()
        waiter.join(timeout=30)
    # the control subscriber proves the message reached no subscriber: its connection is dead
    with pytest.raises(redis.ConnectionError):
        for _ in range(10):
            message = control.get_message(timeout=0.5)
            assert message is None or message["type"] != "message", message
    control.close()
    ok = out.get("value") == "published" and receivers == 0
    table(Row("3 waiter, pubsub killed", f"CLIENT KILL TYPE pubsub ({killed})", 1,
              0 if ok else 1, 0, "-", time.monotonic() - began, "pass" if ok else "FAIL",
              [f"message receivers: {receivers}; wait returned {out}"]))  # fmt: skip
    assert killed >= 2 and receivers == 0
    assert out.get("value") == "published", out
