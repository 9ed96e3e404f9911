"""A private redis-server on a free loopback port, or a private Redis Cluster of three masters,
for one conformance run."""

from __future__ import annotations

import functools
import random
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, cast

import redis
import redis.cluster
from redis.crc import key_slot


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """Starts redis-server with no persistence; never touches the default port."""

    def __init__(self, binary: str = "redis-server") -> None:
        found = shutil.which(binary)
        if found is None:
            raise RuntimeError(f"{binary} not found on PATH")
        self.binary = found
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.workdir = Path(tempfile.mkdtemp(prefix="dothis-conformance-redis-"))

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, deadline_s: float = 10.0) -> None:
        for _attempt in range(5):
            self.port = free_port()
            log = open(self.workdir / "redis.log", "ab")
            self.process = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--dir", str(self.workdir),
                 "--daemonize", "no", "--protected-mode", "yes"],
                stdout=log, stderr=subprocess.STDOUT,
            )
            log.close()
            if self._ready(deadline_s):
                return
            self.stop()
        raise RuntimeError(f"redis-server did not start; see {self.workdir / 'redis.log'}")

    def _ready(self, deadline_s: float) -> bool:
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1)
        deadline = time.monotonic() + deadline_s
        try:
            while time.monotonic() < deadline:
                if self.process is None or self.process.poll() is not None:
                    return False
                try:
                    if client.ping():
                        return True
                except redis.ConnectionError:
                    time.sleep(0.05)
            return False
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_ports(count: int) -> list[int]:
    """Free loopback ports P at most 55535 whose cluster bus port P+10000 is free too."""
    ports: list[int] = []
    while len(ports) < count:
        port = random.randint(20000, 55535)
        if port not in ports and _port_free(port) and _port_free(port + 10000):
            ports.append(port)
    return ports


class RedisCluster:
    """A Redis Cluster of three masters (no replicas) on loopback, every slot assigned: one
    redis-server per master, each in cluster mode with no persistence, stopped by its pid."""

    def __init__(self, binary: str = "redis-server", masters: int = 3) -> None:
        found = shutil.which(binary)
        if found is None:
            raise RuntimeError(f"{binary} not found on PATH")
        cli = shutil.which("redis-cli", path=str(Path(found).parent)) or shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError("redis-cli not found on PATH (it creates the cluster)")
        self.binary, self.cli, self.masters = found, cli, masters
        self.workdir = Path(tempfile.mkdtemp(prefix="dothis-conformance-cluster-"))
        self.processes: list[subprocess.Popen[bytes]] = []
        self.ports: list[int] = []

    @property
    def port(self) -> int:
        """The first node's port: the one the implementations' URL names."""
        return self.ports[0]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0?cluster=1"

    def start(self, deadline_s: float = 20.0) -> None:
        for _attempt in range(3):
            try:
                self._start(deadline_s)
                return
            except RuntimeError:
                self.stop()
        raise RuntimeError(f"the Redis Cluster did not start; see the logs in {self.workdir}")

    def _start(self, deadline_s: float) -> None:
        self.ports = cluster_ports(self.masters)
        for port in self.ports:
            folder = self.workdir / str(port)
            folder.mkdir(exist_ok=True)
            (folder / "nodes.conf").unlink(missing_ok=True)
            with open(folder / "redis.log", "ab") as log:
                self.processes.append(subprocess.Popen(
                    [self.binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                     "--appendonly", "no", "--dir", str(folder), "--daemonize", "no",
                     "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                     "--cluster-node-timeout", "2000"],
                    stdout=log, stderr=subprocess.STDOUT))
        for port in self.ports:
            if not self._wait(functools.partial(self.answers, port), deadline_s):
                raise RuntimeError(f"cluster node {port} did not answer")
        try:
            created = subprocess.run(
                [self.cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports), "--cluster-yes"],
                capture_output=True, timeout=60)
        except subprocess.TimeoutExpired:
            raise RuntimeError("redis-cli --cluster create did not finish in 60 s") from None
        if created.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {created.stdout[-500:]!r}")
        if not self._wait(self._ok, deadline_s):
            raise RuntimeError("the cluster did not reach cluster_state:ok")
        self.slots: list[Any] = list(cast(Any, self.command(self.port, "CLUSTER", "SLOTS")))

    def command(self, port: int, *args: str) -> object:
        node = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)
        try:
            return node.execute_command(*args)
        finally:
            node.close()

    def answers(self, port: int) -> bool:
        return bool(self.command(port, "PING"))

    def _ok(self) -> bool:
        return all("cluster_state:ok" in str(self.command(p, "CLUSTER", "INFO")) for p in self.ports)

    def _wait(self, probe: Callable[[], bool], deadline_s: float) -> bool:
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.processes):
                return False
            try:
                if probe():
                    return True
            except (redis.RedisError, OSError):
                pass
            time.sleep(0.05)
        return False

    def client(self) -> redis.cluster.RedisCluster:
        return redis.cluster.RedisCluster(host="127.0.0.1", port=self.port, socket_timeout=10)

    def port_of(self, key: str) -> int:
        """The port of the master that holds ``key``'s slot."""
        slot = key_slot(key.encode("utf-8"))
        for start, end, master, *_replicas in self.slots:
            if int(start) <= slot <= int(end):
                return int(master[1])
        raise RuntimeError(f"no master holds slot {slot}")

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)
        self.processes = []
