"""Test support: a private redis-server, bounded polling, worker processes and threads."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "schema"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


class RedisServer:
    """A redis-server of the test's own on a free loopback port, stopped by pid."""

    def __init__(self, *extra: str, password: str | None = None) -> None:
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not installed: apt-get install -y redis-server")
        self.dir = tempfile.mkdtemp(prefix="dothis-redis-")
        self.port = free_port()
        self.password = password
        auth = f":{password}@" if password else ""
        self.url = f"redis://{auth}127.0.0.1:{self.port}/0"
        if password:
            extra = (*extra, "--requirepass", password)
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", self.dir, "--save", "", "--appendonly", "no", *extra]  # fmt: skip
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        client = self.client()
        wait_until(lambda: self._ping(client), timeout=10)
        client.close()

    @staticmethod
    def _ping(client: redis.Redis) -> bool:
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, password=self.password, protocol=2, socket_timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


class WorkerProcess:
    """``dothis worker`` as a user runs it."""

    def __init__(
        self,
        url: str,
        queue: str,
        *options: str,
        modules: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        # The log outlives this call: the worker process writes to it until it exits.
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115
            prefix="dothis-worker-", suffix=".log", delete=False
        )
        args = [sys.executable, "-m", "dothis", "worker", "--url", url, "--queue", queue,
                "--processes", "1", *options, *(modules or ("dothis.examples",))]  # fmt: skip
        environment = {**os.environ, "PYTHONPATH": str(Path(__file__).parent), **(env or {})}
        self.process = subprocess.Popen(
            args, stdout=self.log, stderr=subprocess.STDOUT, env=environment
        )

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def signal(self, signum: int) -> None:
        os.kill(self.process.pid, signum)

    def wait(self, timeout: float = 20) -> int:
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


class WorkerThread:
    """A Worker serving in a thread of the test process (for tests that need its registry)."""

    def __init__(self, worker: Any) -> None:
        self.worker = worker
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            asyncio.run(self.worker.serve())
        except BaseException as error:  # surfaced by stop()
            self.error = error

    def stop(self, timeout: float = 15) -> None:
        self.worker.stop()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "worker did not stop"
        if self.error is not None:
            raise self.error
