"""The same data as JSON (``/api/...``), the live events and the Prometheus gauges."""

from __future__ import annotations

from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from dothis.dashboard import overview, tasks
from dothis.dashboard.live import stream
from dothis.dashboard.pages import PAGE_SIZE, dashboard_of, number, required


def reply(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status, headers={"Cache-Control": "no-store"})


async def queues(request: Request) -> Response:
    dash = dashboard_of(request)
    return reply({"queues": await dash.read(overview.overview, dash.reader)})


async def queue(request: Request) -> Response:
    dash = dashboard_of(request)
    return reply(await dash.read(overview.queue_overview, dash.reader, required(request, "queue")))


async def counts(request: Request) -> Response:
    dash = dashboard_of(request)
    names = await dash.read(dash.reader.queue_names)
    return reply({"queues": await dash.read(overview.counts, dash.reader, names)})


async def task_list(request: Request) -> Response:
    dash = dashboard_of(request)
    found = await dash.read(tasks.page, dash.reader, required(request, "queue"),
                            request.query_params.get("state", "pending"),
                            number(request, "start", 0),
                            number(request, "count", PAGE_SIZE),
                            number(request, "shard", 0))  # fmt: skip
    return reply(found)


async def task(request: Request) -> Response:
    dash = dashboard_of(request)
    queue_name, task_id = required(request, "queue"), required(request, "id")
    found = await dash.read(tasks.detail, dash.reader, queue_name, task_id)
    if found is None:
        return reply({"error": f"no task {task_id!r} in queue {queue_name!r}"}, 404)
    return reply(found)


async def search(request: Request) -> Response:
    dash = dashboard_of(request)
    params = request.query_params
    found = await dash.read(tasks.search, dash.reader, required(request, "queue"),
                            params.get("function", "").strip(),
                            params.get("args", ""))  # fmt: skip
    return reply(found)


async def workers(request: Request) -> Response:
    dash = dashboard_of(request)
    names = request.query_params.getlist("queue") or await dash.read(dash.reader.queue_names)
    return reply({"workers": await dash.read(overview.worker_rows, dash.reader, names)})


async def live(request: Request) -> Response:
    """The shared poll's state: how many watch, whether it runs, how many polls it made."""
    hub = dashboard_of(request).hub
    return reply({"subscribers": len(hub.subscribers), "polling": hub.task is not None,
                  "polls": hub.polls, "interval": hub.interval})  # fmt: skip


async def events(request: Request) -> Response:
    hub = dashboard_of(request).hub
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(hub), media_type="text/event-stream", headers=headers)


async def metrics(request: Request) -> Response:
    dash = dashboard_of(request)
    body = await dash.read(generate_latest, dash.metrics)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def routes() -> list[Route]:
    return [
        Route("/api/queues", queues),
        Route("/api/queue", queue),
        Route("/api/counts", counts),
        Route("/api/tasks", task_list),
        Route("/api/task", task),
        Route("/api/search", search),
        Route("/api/workers", workers),
        Route("/api/live", live),
    ]
