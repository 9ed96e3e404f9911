"""The HTML pages: overview, task lists, task detail, search, workers, and the action forms."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response

from dothis.dashboard import actions, overview, tasks
from dothis.dashboard.state import Dashboard
from dothis.errors import DothisError, InvalidArguments

PAGE_SIZE = 50
MAX_FORM_BYTES = 1_000_000


def dashboard_of(request: Request) -> Dashboard:
    found: Dashboard = request.app.state.dashboard
    return found


def number(request: Request, name: str, default: int) -> int:
    value = request.query_params.get(name, "")
    try:
        return int(value) if value else default
    except ValueError as error:
        raise InvalidArguments(f"{name} must be a whole number, not {value!r}") from error


def required(request: Request, name: str) -> str:
    value = request.query_params.get(name, "")
    if not value:
        raise InvalidArguments(f"the query parameter {name!r} is missing")
    return value


async def overview_page(request: Request) -> Response:
    dash = dashboard_of(request)
    queues = await dash.read(overview.overview, dash.reader)
    if request.query_params.get("partial"):
        return dash.render(request, "overview_table.html", queues=queues)
    return dash.render(request, "overview.html", queues=queues, title="Queues")


async def tasks_page(request: Request) -> Response:
    dash = dashboard_of(request)
    queue = required(request, "queue")
    state = request.query_params.get("state", "pending")
    start = number(request, "start", 0)
    count = number(request, "count", PAGE_SIZE)
    shard = number(request, "shard", 0)
    found = await dash.read(tasks.page, dash.reader, queue, state, start, count, shard)
    if request.query_params.get("partial"):
        return dash.render(request, "tasks_table.html", page=found)
    listed = found["queue"]  # on a sharded queue, the shard shown
    shown = await dash.read(overview.counts, dash.reader, [listed])
    return dash.render(request, "tasks.html", page=found, states=tasks.LIST_STATES,
                       counts=shown[listed], title=f"{listed}: {state}")  # fmt: skip


async def task_page(request: Request) -> Response:
    dash = dashboard_of(request)
    queue, task_id = required(request, "queue"), required(request, "id")
    found = await dash.read(tasks.detail, dash.reader, queue, task_id)
    if found is None:
        return dash.render(request, "missing.html", 404, queue=queue, task_id=task_id,
                           title="No such task")  # fmt: skip
    template = "task_body.html" if request.query_params.get("partial") else "task.html"
    return dash.render(request, template, task=found, title=f"task {task_id}")


async def search_page(request: Request) -> Response:
    dash = dashboard_of(request)
    params = request.query_params
    queue = params.get("queue", "")
    task_id, function, args = (params.get(name, "").strip() for name in ("id", "function", "args"))
    names = await dash.read(dash.reader.queue_names)
    if queue and task_id:  # lookup by id: straight to the task
        tasks.check_id(task_id)
        where = urlencode({"queue": queue, "id": task_id})
        target = f"{request.scope.get('root_path', '')}/task?{where}"
        return RedirectResponse(target, 303)
    found = None
    if queue and (function or args):
        found = await dash.read(tasks.search, dash.reader, queue, function, args)
    return dash.render(request, "search.html", found=found, names=names, queue=queue,
                       function=function, args=args, window=tasks.SEARCH_WINDOW,
                       title="Search")  # fmt: skip


async def workers_page(request: Request) -> Response:
    dash = dashboard_of(request)
    names = await dash.read(dash.reader.queue_names)
    rows = await dash.read(overview.worker_rows, dash.reader, names)
    return dash.render(request, "workers.html", workers=rows, title="Workers")


async def read_form(request: Request) -> dict[str, list[str]]:
    """The urlencoded body (parsed here: no multipart dependency), at most 1 MB."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise HTTPException(413, "form too large")
    return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)


async def action(request: Request) -> Response:
    """POST /actions/<name>: queue, id (any number), function, csrf, next."""
    dash = dashboard_of(request)
    form = await read_form(request)
    first = {name: values[0] for name, values in form.items() if values}
    if not dash.csrf.allows(request, first):
        return PlainTextResponse("refused: the form's token is missing or stale (reload the "
                                 "page), or it came from another site", 403)  # fmt: skip
    name = request.path_params["name"]
    queue = first.get("queue", "")
    if not queue:
        raise InvalidArguments("the form names no queue")
    done = await dash.read(actions.run, dash.reader, name, queue, form.get("id", []),
                           first.get("function", ""))  # fmt: skip
    root = str(request.scope.get("root_path", "")).rstrip("/")
    back = first.get("next", "")
    if not back.startswith("/") or back.startswith(("//", "/\\")):  # never another site
        back = f"/tasks?{urlencode({'queue': queue, 'state': 'failed'})}"
    separator = "&" if "?" in back else "?"
    return RedirectResponse(f"{root}{back}{separator}{urlencode({'notice': done.message})}", 303)


def _error_page(request: Request, status: int, message: str) -> Response:
    if request.url.path.startswith(str(request.scope.get("root_path", "")) + "/api/"):
        return JSONResponse({"error": message}, status)
    return dashboard_of(request).render(request, "error.html", status, message=message,
                                        title="Error")  # fmt: skip


async def bad_request(request: Request, error: Exception) -> Response:
    return _error_page(request, 400, str(error))


async def unavailable(request: Request, error: Exception) -> Response:
    return _error_page(request, 503, str(error))


EXCEPTION_HANDLERS: Any = {InvalidArguments: bad_request, DothisError: unavailable}
