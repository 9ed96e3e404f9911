"""The dashboard tests' fixtures: the app on a test client, or served by uvicorn on a free port."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the dashboard extra is not installed")

from starlette.testclient import TestClient
from support import free_port, wait_until

from dothis.dashboard import create_app


class Served:
    """The dashboard served by uvicorn in a thread of the test process, on a free port."""

    def __init__(self, app: Any, host: str = "127.0.0.1") -> None:
        import uvicorn

        self.app = app
        self.port = free_port()
        self.base = f"http://{host}:{self.port}"
        config = uvicorn.Config(app, host=host, port=self.port, log_level="warning",
                                access_log=False, lifespan="on",
                                timeout_graceful_shutdown=1)  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_until(lambda: self.server.started, timeout=15)

    @property
    def hub(self) -> Any:
        return self.app.state.dashboard.hub

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        assert not self.thread.is_alive(), "the dashboard server did not stop"


@pytest.fixture
def make_client(url: str) -> Iterator[Callable[..., TestClient]]:
    """A test client of a dashboard of ``url`` (options: create_app's)."""
    clients: list[TestClient] = []

    def make(**options: Any) -> TestClient:
        client = TestClient(create_app(url, **options), follow_redirects=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def serve(url: str) -> Iterator[Callable[..., Served]]:
    started: list[Served] = []

    def start(**options: Any) -> Served:
        served = Served(create_app(url, **options))
        started.append(served)
        return served

    yield start
    for served in started:
        served.stop()
