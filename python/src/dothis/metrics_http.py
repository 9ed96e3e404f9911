"""Serving a Prometheus registry at /metrics over HTTP, from a daemon thread (prometheus-client's
own server), for the worker's metrics and the queue gauges alike."""

from __future__ import annotations

import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import start_http_server


class MetricsServer:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int | None:
        """The port /metrics is served on, or None."""
        return None if self._server is None else int(self._server.server_port)

    def serve(self, port: int, host: str = "127.0.0.1") -> int:
        """Serve /metrics on ``host:port`` (port 0: a free one); the port."""
        if self._server is not None:
            raise RuntimeError(f"metrics are already served on port {self.port}")
        try:
            self._server, self._thread = start_http_server(port, host, self.registry)
        except OSError as error:
            raise OSError(error.errno, f"cannot serve metrics on {host}:{port}: "
                          f"{error.strerror or error}") from error  # fmt: skip
        return int(self._server.server_port)

    def close(self) -> None:
        server, thread, self._server, self._thread = self._server, self._thread, None, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)
