"""A throwaway redis-server for a test session: the ``redis-server`` binary on PATH, on a free
loopback port, with a temporary directory of its own and no persistence; stopped by its pid."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

INSTALL_HINT = (
    "the dothis testing kit starts a real redis-server and found none on PATH: install it "
    "(Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis)"
)
START_SECONDS = 10.0
STOP_SECONDS = 10.0
PORT_ATTEMPTS = 3


class RedisNotInstalled(RuntimeError):
    """There is no ``redis-server`` on PATH."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(port: int) -> bool:
    """True once the server on ``port`` answers PING (a raw RESP exchange: no client needed)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """``RedisServer()`` starts one; ``url`` names it; ``stop()`` ends it and removes its files."""

    def __init__(self, binary: str = "redis-server") -> None:
        path = shutil.which(binary)
        if path is None:
            raise RedisNotInstalled(INSTALL_HINT)
        self.dir = tempfile.mkdtemp(prefix="dothis-testing-redis-")
        for _ in range(PORT_ATTEMPTS):  # a free port may be taken before the server binds it
            self._spawn(path)
            try:
                if self._ready():
                    return
            except BaseException:
                self.stop()
                raise
        status = self.process.returncode
        self.stop()
        raise RuntimeError(f"redis-server exited at start with status {status} "
                           f"({PORT_ATTEMPTS} ports tried)")  # fmt: skip

    def _spawn(self, path: str) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        args = [path, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
                "--save", "", "--appendonly", "no", "--daemonize", "no"]  # fmt: skip
        self.process = subprocess.Popen(  # stopped by stop(), by pid
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )

    def _ready(self) -> bool:
        """True once it answers; False when it exited at start (its port was taken meanwhile)."""
        deadline = time.monotonic() + START_SECONDS
        while not _answers(self.port):
            if self.process.poll() is not None:
                return False
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not answer on port {self.port} within "
                                   f"{START_SECONDS:.0f} s")  # fmt: skip
            time.sleep(0.02)
        return self.process.poll() is None  # ours answered, not another server on that port

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        """SIGTERM by pid (SIGKILL if it lingers), then remove its directory."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=STOP_SECONDS)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
