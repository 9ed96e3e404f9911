"""The dashboard's pages, JSON API and actions against a real redis-server."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import redis
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from dothis.dashboard import create_app
from dothis.wire.clock import now_ms

pytestmark = pytest.mark.integration


def failed_by_hand(r: redis.Redis, queue: str, task_id: str, function: str = "echo") -> None:
    """A failed task as finish.lua leaves it (SPEC.md 5.5)."""
    r.hset(f"{queue}:task:{task_id}", mapping={
        "function": function, "state": "finished", "result": "failed", "args": '{"text": "x"}',
        "error-code": "exception", "error-reason": "boom",
        "error-exception": "Traceback (most recent call last):\nRuntimeError: boom",
        "pending-created": "2026-01-01T00:00:00.000000Z",
        "finished-created": "2026-01-01T00:00:01.000000Z"})  # fmt: skip
    r.zadd(f"{queue}:failed", {task_id: now_ms()})
    r.zadd("dothis.queues", {queue: now_ms()})


def token(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "no CSRF token in the page"
    return found.group(1)


def post(client: TestClient, action: str, **form: Any) -> Any:
    return client.post(f"/actions/{action}", data=form)


def test_overview_counts_every_state_and_the_last_hour(make_client, queue, r) -> None:  # type: ignore[no-untyped-def]
    for index in range(3):
        queue.enqueue("echo", text=f"t{index}")
    failed_by_hand(r, queue.name, "f-1")
    client = make_client()
    page = client.get("/")
    assert page.status_code == 200
    assert f'data-count="{queue.name}|pending">3<' in page.text
    assert f'data-count="{queue.name}|failed">1<' in page.text
    assert "echo (3)" in page.text and "no worker" in page.text  # a backlog nobody runs
    [row] = [q for q in client.get("/api/queues").json()["queues"] if q["queue"] == queue.name]
    assert row["counts"]["pending"] == 3 and row["counts"]["failed"] == 1
    assert row["throughput"]["failed"] == 1 and row["throughput"]["failed_buckets"][-1] == 1
    assert row["backlog"] == [{"function": "echo", "pending": 3, "served": False}]
    assert client.get("/api/counts").json()["queues"][queue.name]["pending"] == 3


def test_pages_are_offsets_in_order(make_client, queue, r) -> None:  # type: ignore[no-untyped-def]
    ids = [queue.enqueue("echo", text=index).id for index in range(120)]
    client = make_client()
    first = client.get("/api/tasks", params={"queue": queue.name, "count": 50}).json()
    assert first["total"] == 120 and [row["id"] for row in first["rows"]] == ids[:50]
    last = client.get("/api/tasks", params={"queue": queue.name, "start": 100}).json()
    assert [row["id"] for row in last["rows"]] == ids[100:]
    for index in range(5):
        failed_by_hand(r, queue.name, f"f-{index}")
    failed = client.get("/api/tasks", params={"queue": queue.name, "state": "failed",
                                               "start": 1, "count": 2}).json()  # fmt: skip
    assert [row["id"] for row in failed["rows"]] == ["f-3", "f-2"]  # the newest first
    html = client.get("/tasks", params={"queue": queue.name, "start": 50}).text
    assert "51\u2013100 of <span>120</span>" in html
    assert "older \u203a" in html and "\u2039 newer" in html
    assert client.get("/tasks", params={"queue": queue.name, "state": "nope"}).status_code == 400


def test_task_detail_shows_every_field_and_the_links(make_client, queue, r) -> None:  # type: ignore[no-untyped-def]
    parent = queue.enqueue("echo", text="parent", on_failure="echo")
    child = queue.enqueue("echo", text="child", depends_on=[parent.id])
    failed_by_hand(r, queue.name, "f-1")
    r.hset(f"{queue.name}:task:f-1", mapping={
        "progress": '{"fraction": 0.5, "message": "half", "updated": "2026-01-01T00:00:00Z"}',
        "traceparent": f"00-{'ab' * 16}-{'cd' * 8}-01"})  # fmt: skip
    client = make_client()
    shown = client.get("/task", params={"queue": queue.name, "id": "f-1"}).text
    assert "RuntimeError: boom" in shown and "half" in shown and "ab" * 16 in shown
    assert "error-exception" in shown  # every field
    data = client.get("/api/task", params={"queue": queue.name, "id": child.id}).json()
    assert data["depends_on"] == [parent.id] and json.loads(data["fields"]["args"]) == {
        "text": "child"}  # fmt: skip
    assert data["args_pretty"] == '{\n  "text": "child"\n}'
    data = client.get("/api/task", params={"queue": queue.name, "id": parent.id}).json()
    assert data["dependents"] == [child.id] and data["callbacks"] == {"on-failure": "echo"}
    assert data["callback_id"].startswith("cb-")
    missing = client.get("/task", params={"queue": queue.name, "id": "nope"})
    assert missing.status_code == 404 and "No such task" in missing.text
    assert client.get("/api/task", params={"queue": queue.name, "id": "x"}).status_code == 404


def test_search_by_function_and_args_and_lookup_by_id(make_client, queue, r) -> None:  # type: ignore[no-untyped-def]
    queue.enqueue("echo", text="needle-1")
    queue.enqueue("add", a=1, b=2)
    failed_by_hand(r, queue.name, "f-1", function="fail")
    client = make_client()
    found = client.get("/api/search", params={"queue": queue.name, "args": "needle"}).json()
    assert [row["function"] for row in found["rows"]] == ["echo"] and found["searched"] == 3
    found = client.get("/api/search", params={"queue": queue.name, "function": "fail"}).json()
    assert [(row["id"], row["list"]) for row in found["rows"]] == [("f-1", "failed")]
    page = client.get("/search", params={"queue": queue.name, "function": "add"}).text
    assert "newest 1000 entries" in page and "1 match(es) among 3" in page
    jump = client.get("/search", params={"queue": queue.name, "id": "f-1"})
    assert jump.status_code == 303 and jump.headers["location"].endswith(
        f"/task?queue={queue.name}&id=f-1")  # fmt: skip


def test_actions_go_through_the_producer_api(make_client, queue, r) -> None:  # type: ignore[no-untyped-def]
    for task_id, function in (("a", "echo"), ("b", "fail"), ("c", "fail"), ("d", "echo")):
        failed_by_hand(r, queue.name, task_id, function)
    client = make_client()
    csrf = token(client.get("/tasks", params={"queue": queue.name, "state": "failed"}).text)
    done = post(client, "requeue", csrf=csrf, queue=queue.name, id="a",
                next=f"/task?queue={queue.name}&id=a")  # fmt: skip
    assert done.status_code == 303 and "requeued+1+task" in done.headers["location"]
    assert r.hget(f"{queue.name}:task:a", "state") == b"pending"
    post(client, "requeue-function", csrf=csrf, queue=queue.name, function="fail")
    assert r.zrange(f"{queue.name}:failed", 0, -1) == [b"d"]
    post(client, "requeue-all", csrf=csrf, queue=queue.name)
    assert r.zcard(f"{queue.name}:failed") == 0 and r.llen(f"{queue.name}:pending") == 4
    post(client, "cancel", csrf=csrf, queue=queue.name, id=["a", "b"])
    assert r.hget(f"{queue.name}:task:a", "result") == b"cancelled"
    r.hset(f"{queue.name}:task:d", "state", "executing")  # as if a worker ran it
    done = post(client, "delete", csrf=csrf, queue=queue.name, id=["a", "d", "nope"])
    assert "1+deleted" in done.headers["location"] and "cancel+it+first" in done.headers["location"]
    assert not r.exists(f"{queue.name}:task:a") and r.zscore(f"{queue.name}:failed", "a") is None
    assert r.hget(f"{queue.name}:task:d", "state") == b"executing"  # a running task is kept
    assert post(client, "empty", csrf=csrf, queue=queue.name).status_code == 303
    assert r.llen(f"{queue.name}:pending") == 0 and not r.exists(f"{queue.name}:task:c")
    post(client, "delete-queue", csrf=csrf, queue=queue.name)
    assert not r.exists(f"{queue.name}:failed", f"{queue.name}:task:a")


def test_a_post_without_the_token_or_from_another_site_is_refused(make_client, queue, r) -> None:  # type: ignore[no-untyped-def]
    failed_by_hand(r, queue.name, "a")
    client = make_client()
    csrf = token(client.get("/tasks", params={"queue": queue.name, "state": "failed"}).text)
    assert post(client, "requeue", queue=queue.name, id="a").status_code == 403
    assert post(client, "requeue", csrf="stale", queue=queue.name, id="a").status_code == 403
    other = client.post("/actions/requeue", data={"csrf": csrf, "queue": queue.name, "id": "a"},
                        headers={"Origin": "http://evil.example"})  # fmt: skip
    assert other.status_code == 403
    assert r.zcard(f"{queue.name}:failed") == 1  # nothing happened
    assert post(client, "explode", csrf=csrf, queue=queue.name).status_code == 400


def test_read_only_has_no_action_anywhere(make_client, queue, r) -> None:  # type: ignore[no-untyped-def]
    queue.enqueue("echo", text="x")
    failed_by_hand(r, queue.name, "a")
    client = make_client(read_only=True)
    pages = ["/", "/workers", "/search", f"/task?queue={queue.name}&id=a"]
    pages += [f"/tasks?queue={queue.name}&state={state}" for state in ("pending", "failed")]
    for path in pages:
        page = client.get(path)
        assert page.status_code == 200, path
        assert 'method="post"' not in page.text and "/actions/" not in page.text, path
        assert "csrf" not in page.text and "read-only" in page.text, path
    for action in ("requeue", "requeue-all", "cancel", "delete", "empty", "delete-queue"):
        refused = client.post(f"/actions/{action}", data={"queue": queue.name, "id": "a"})
        assert refused.status_code in (404, 405), action
    assert client.post("/", data={}).status_code == 405
    assert r.zcard(f"{queue.name}:failed") == 1 and r.llen(f"{queue.name}:pending") == 1


GUARDED = ["/", "/api/queues", "/events", "/metrics", "/static/dashboard.css", "/actions/requeue"]


@pytest.mark.parametrize("path", GUARDED)
def test_basic_auth_guards_everything(make_client, queue, path) -> None:  # type: ignore[no-untyped-def]
    client = make_client(auth="admin:s3cret")
    refused = client.get(path) if path != "/actions/requeue" else client.post(path)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Basic")
    assert client.get(path, auth=("admin", "wrong")).status_code == 401
    if path not in ("/events", "/actions/requeue"):
        assert client.get(path, auth=("admin", "s3cret")).status_code == 200


def test_the_host_application_plugs_its_own_auth(url, queue) -> None:  # type: ignore[no-untyped-def]
    async def allowed(request: Any) -> bool:
        return request.headers.get("x-user") == "ops"

    host = Starlette(routes=[Mount("/dash", create_app(url, auth=allowed))])
    with TestClient(host) as client:
        assert client.get("/dash/").status_code == 401
        page = client.get("/dash/", headers={"x-user": "ops"})
        assert page.status_code == 200
        assert 'href="/dash/static/dashboard.css"' in page.text and 'data-root="/dash"' in page.text
        assert client.get("/dash/static/dashboard.js", headers={"x-user": "ops"}).status_code == 200


def test_metrics_are_the_queue_gauges(make_client, queue) -> None:  # type: ignore[no-untyped-def]
    queue.enqueue("echo", text="x")
    text = make_client(queues=[queue.name]).get("/metrics").text
    assert f'dothis_queue_tasks{{queue="{queue.name}",state="pending"}} 1.0' in text
    assert "dothis_queue_redis_up 1.0" in text


def test_workers_page_shows_the_manifest(make_client, queue, start_worker) -> None:  # type: ignore[no-untyped-def]
    from dothis import Registry

    registry = Registry()
    registry.register(lambda: None, name="noop")
    start_worker(registry, pool="thread")
    client = make_client()
    from support import wait_until

    rows = wait_until(lambda: client.get("/api/workers", params={"queue": queue.name}).json()[
        "workers"])  # fmt: skip
    assert rows[0]["language"] == "python" and rows[0]["functions"] == ["noop"]
    assert rows[0]["queues"] == [queue.name] and rows[0]["heartbeat_age_seconds"] is not None
    page = client.get("/workers").text
    assert rows[0]["id"] in page and "noop" in page


def test_live_state_endpoint_and_bad_queue_names(make_client) -> None:  # type: ignore[no-untyped-def]
    client = make_client()
    assert client.get("/api/live").json()["polling"] is False  # nobody watches: no poll
    assert client.get("/api/tasks", params={"queue": "bad name"}).status_code == 400
    assert client.get("/api/tasks").json()["error"] == "the query parameter 'queue' is missing"
