"""What every request of one dashboard shares: the reader of Redis, the live hub, the gauges of
/metrics, the CSRF token and the templates."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from jinja2 import Environment, FileSystemLoader, select_autoescape
from prometheus_client import CollectorRegistry
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse

from dothis.dashboard.live import Hub, Snapshot
from dothis.dashboard.overview import counts
from dothis.dashboard.reader import Reader
from dothis.dashboard.security import Csrf
from dothis.producer.gauges import QueueGauges
from dothis.wire.display import duration

HERE = Path(__file__).parent
T = TypeVar("T")


class Dashboard:
    """What every request of one dashboard shares: the reader, the hub, the templates."""

    def __init__(
        self,
        url: str | None,
        queues: Sequence[str] | None,
        read_only: bool,
        poll_interval: float,
    ) -> None:
        self.reader = Reader(url, queues)
        self.read_only = read_only
        self.csrf = Csrf()
        self.hub = Hub(self.poll, poll_interval)
        self.gauges = QueueGauges(self.reader.url, queues, poll_interval)
        self.metrics = CollectorRegistry(auto_describe=False)
        self.metrics.register(self.gauges)
        self.templates = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters["duration"] = duration

    async def read(self, function: Callable[..., T], *args: Any) -> T:
        """A blocking read (or action), in the thread pool."""
        return await run_in_threadpool(function, *args)

    async def poll(self) -> Snapshot:
        def snapshot() -> Snapshot:
            return {"queues": counts(self.reader, self.reader.queue_names())}

        return await self.read(snapshot)

    def render(self, request: Request, name: str, status: int = 200, **values: Any
               ) -> HTMLResponse:  # fmt: skip
        root = str(request.scope.get("root_path", "")).rstrip("/")
        values.setdefault("notice", request.query_params.get("notice"))
        html = self.templates.get_template(name).render(
            root=root, read_only=self.read_only, csrf=self.csrf.token, request=request, **values
        )
        return HTMLResponse(html, status)

    async def close(self) -> None:
        await self.hub.close()
        await self.read(self.gauges.close)
        await self.read(self.reader.close)
