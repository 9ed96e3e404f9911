"""The monitor role is what a read-only dashboard needs (SPEC.md 15): every page and API call of
a dashboard in read-only mode answers under a user made with ``dothis acl --role monitor``, with
tasks and a worker that a producer and a worker of their own roles made."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from support import WorkerProcess, wait_until

from dothis import Queue

pytest.importorskip("starlette", reason="the dashboard extra is not installed")

from starlette.testclient import TestClient

from dothis.dashboard import create_app

pytestmark = pytest.mark.integration


def test_a_read_only_dashboard_runs_as_the_monitor(
    make_user: Callable[..., str], tagged: Callable[[], str]
) -> None:
    name = tagged()
    producer, worker_url, monitor = (
        make_user(role, name) for role in ("producer", "worker", "monitor")
    )
    with Queue(name, producer) as queue:
        done = queue.enqueue("add", a=1, b=2)
        failed = queue.enqueue("add", a=1)  # missing b: bad-arguments
        worker = WorkerProcess(worker_url, name, "--processes", "1")
        try:
            assert done.wait(timeout=20) == 3
            wait_until(lambda: failed.state == "finished", timeout=20)
            pages = [
                "/",
                "/workers",
                "/search?function=add",
                f"/task?queue={name}&id={done.id}",
                "/api/queues",
                "/api/workers",
                "/metrics",
            ]
            pages += [f"/tasks?queue={name}&state={state}" for state in ("succeeded", "failed")]
            pages += [f"/api/tasks?queue={name}&state={state}" for state in ("pending", "failed")]
            with TestClient(create_app(monitor, read_only=True, queues=[name])) as client:
                for path in pages:
                    page = client.get(path)
                    assert page.status_code == 200, (path, page.text[:300])
                    assert "PermissionDenied" not in page.text and "NOPERM" not in page.text, path
                assert name in client.get("/api/queues").text
                assert worker.process.poll() is None
        finally:
            worker.stop()
