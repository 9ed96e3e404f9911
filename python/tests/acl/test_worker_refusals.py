"""A worker under ACL rules that change while it serves (SPEC.md 15.3): a refusal met while
serving is a fault of the server, logged and retried, never a task failure (W-ACL-2); a refused
write to the registry of queues is ignored (W-ACL-3)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from support import RedisServer, WorkerProcess, wait_until

from dothis import Queue

from .conftest import MakeUser

pytestmark = [pytest.mark.integration, pytest.mark.acceptance]


def user_of(url: str) -> str:
    return url.split("//", 1)[1].split(":", 1)[0]


def test_a_refusal_while_serving_is_retried_not_a_task_failure(
    make_user: MakeUser, tagged: Callable[[], str], acl_server: RedisServer
) -> None:
    name = tagged()
    producer, worker_url = make_user("producer", name), make_user("worker", name)
    admin = acl_server.client()
    # a short lease and reap interval: the refused entry is recovered (SPEC.md 5.7) soon after
    worker = WorkerProcess(worker_url, name, "--lease-ms", "2000", "--heartbeat-ms", "500",
                           "--reap-ms", "500")  # fmt: skip
    try:
        with Queue(name, producer) as queue:
            assert queue.enqueue("add", a=1, b=2).wait(timeout=20) == 3
            admin.execute_command("ACL", "SETUSER", user_of(worker_url), "-evalsha", "-eval")
            task = queue.enqueue("add", a=2, b=3)
            # refused where it meets the rule: take.lua's claim (a busy worker) or start.lua
            wait_until(lambda: "cannot claim" in worker.output()
                       or "cannot start" in worker.output(), timeout=20)  # fmt: skip
            assert task.state != "finished"  # refused, not failed
            assert worker.process.poll() is None, worker.output()
            admin.execute_command("ACL", "SETUSER", user_of(worker_url), "+evalsha", "+eval")
            assert task.wait(timeout=30) == 5
    finally:
        worker.stop()
        admin.close()
    assert "Traceback" not in worker.output(), worker.output()


def test_a_refused_write_to_the_registry_of_queues_is_ignored(
    make_user: MakeUser, tagged: Callable[[], str], acl_server: RedisServer
) -> None:
    name = tagged()
    producer, worker_url = make_user("producer", name), make_user("worker", name)
    admin = acl_server.client()
    admin.execute_command("ACL", "SETUSER", user_of(worker_url), "clearselectors")
    worker = WorkerProcess(worker_url, name)
    try:
        with Queue(name, producer) as queue:
            assert queue.enqueue("add", a=4, b=5).wait(timeout=20) == 9
        assert worker.process.poll() is None, worker.output()
    finally:
        worker.stop()
        admin.close()
    assert "Traceback" not in worker.output(), worker.output()
