"""The dashboard as an ASGI application: ``create_app`` builds it, to serve with ``dothis
dashboard`` or to mount in a Starlette or FastAPI application.

Reads run in Starlette's thread pool (the Queue's client is synchronous); the live counts come from
one shared poll (live.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from dothis.dashboard import api, pages
from dothis.dashboard.security import Auth, Guard
from dothis.dashboard.state import HERE, Dashboard


def _routes(read_only: bool) -> list[BaseRoute]:
    routes: list[BaseRoute] = [
        Route("/", pages.overview_page, name="overview"),
        Route("/tasks", pages.tasks_page, name="tasks"),
        Route("/task", pages.task_page, name="task"),
        Route("/search", pages.search_page, name="search"),
        Route("/workers", pages.workers_page, name="workers"),
        Route("/events", api.events, name="events"),
        Route("/metrics", api.metrics, name="metrics"),
        *api.routes(),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    if not read_only:
        routes.append(Route("/actions/{name}", pages.action, methods=["POST"], name="action"))
    return routes


def create_app(
    url: str | None = None,
    *,
    queues: Sequence[str] | None = None,
    read_only: bool = False,
    auth: Auth = None,
    poll_interval: float = 1.0,
) -> Starlette:
    """The dashboard of the queues at ``url`` (``queues``: these names; None: every queue of
    the registry ``dothis.queues``).

    ``read_only``: no action anywhere (no form, and POST answers 405). ``auth``: ``"user:pass"``
    or ``(user, password)`` for basic auth, or the host application's own check, a callable
    given the Starlette ``Request`` that returns (or awaits to) True to let it through; None: no
    authentication. ``poll_interval``: seconds between the live polls, while someone watches.
    """
    dashboard = Dashboard(url, queues, read_only, poll_interval)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await dashboard.close()

    middleware = [Middleware(Guard, auth=auth)] if auth is not None else []
    app = Starlette(routes=_routes(read_only), middleware=middleware, lifespan=lifespan,
                    exception_handlers=pages.EXCEPTION_HANDLERS)  # fmt: skip
    app.state.dashboard = dashboard
    return app
