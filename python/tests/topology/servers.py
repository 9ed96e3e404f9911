"""Real Redis topologies on loopback for the tests of this folder: a TLS server whose certificates
an openssl-made CA signed, a primary with a replica and three sentinels, a three-master cluster.

Every process is a redis-server of its own on a free port, in a temporary directory, stopped by its
pid; readiness is a bounded poll, never a fixed sleep.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from support import free_port, wait_until

START_SECONDS = 15.0


def _run(*args: str, cwd: Path) -> None:
    subprocess.run(args, cwd=cwd, check=True, capture_output=True, timeout=30)


def make_ca(folder: Path, name: str) -> tuple[Path, Path]:
    """A CA of its own (certificate, key) in ``folder``."""
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    _run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(cert), cwd=folder)  # fmt: skip
    return cert, key


def make_cert(folder: Path, name: str, ca: tuple[Path, Path]) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost signed by ``ca`` (certificate, key)."""
    cert, key, request = folder / f"{name}.crt", folder / f"{name}.key", folder / f"{name}.csr"
    extensions = folder / f"{name}.ext"
    extensions.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
         "-keyout", str(key), "-out", str(request), cwd=folder)  # fmt: skip
    _run("openssl", "x509", "-req", "-in", str(request), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
         "-CAcreateserial", "-days", "2", "-extfile", str(extensions), "-out", str(cert),
         cwd=folder)  # fmt: skip
    return cert, key


class Process:
    """One redis-server (or sentinel) on ``port``, started with ``args``, stopped by pid."""

    def __init__(self, folder: Path, port: int, args: list[str]) -> None:
        self.port = port
        self.dir = folder / str(port)
        self.dir.mkdir()
        self.log = self.dir / "log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(["redis-server", *args], cwd=self.dir, stdout=log,
                                            stderr=subprocess.STDOUT)  # fmt: skip

    def kill(self) -> None:
        """SIGKILL: a crash."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def _answers(make: Callable[[], redis.Redis]) -> bool:
    try:
        client = make()
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError):
        return False


class Group:
    """Processes started together in one temporary directory and stopped together."""

    def __init__(self, prefix: str) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix=prefix))
        self.processes: list[Process] = []

    def start(self, args: list[str], port: int | None = None) -> Process:
        if port is None:
            port = free_port()
            args = ["--port", str(port), *args]
        base = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"]
        process = Process(self.folder, port, [*args, *base])
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in self.processes:
            process.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


class TlsServer(Group):
    """A redis-server speaking TLS only; ``ca`` trusts it, ``other_ca`` does not."""

    def __init__(self) -> None:
        super().__init__("dothis-tls-")
        self.ca = make_ca(self.folder, "ca")
        self.other_ca = make_ca(self.folder, "other-ca")
        self.cert = make_cert(self.folder, "server", self.ca)
        self.client_cert = make_cert(self.folder, "client", self.ca)
        port = free_port()
        self.server = self.start(["--port", "0", "--tls-port", str(port),
                                  "--tls-cert-file", str(self.cert[0]),
                                  "--tls-key-file", str(self.cert[1]),
                                  "--tls-ca-cert-file", str(self.ca[0]),
                                  "--tls-auth-clients", "optional"], port)  # fmt: skip
        self.url = f"rediss://127.0.0.1:{port}/0"
        wait_until(lambda: _answers(self.client), timeout=START_SECONDS)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.server.port, ssl=True, ssl_ca_certs=str(self.ca[0]),
                           protocol=2, socket_timeout=5)  # fmt: skip


def plain(port: int, **settings: Any) -> redis.Redis:
    return redis.Redis(port=port, protocol=2, socket_timeout=5, **settings)


class SentinelSet(Group):
    """A primary, one replica and three sentinels watching them as ``service`` (quorum 2)."""

    service = "dothis-primary"

    def __init__(self) -> None:
        super().__init__("dothis-sentinel-")
        self.primary = self.start([])
        wait_until(lambda: _answers(lambda: plain(self.primary.port)), timeout=START_SECONDS)
        self.replica = self.start(["--replicaof", "127.0.0.1", str(self.primary.port)])
        self.sentinels = [self._sentinel() for _ in range(3)]
        for sentinel in self.sentinels:
            wait_until(lambda s=sentinel: _answers(lambda: plain(s.port)), timeout=START_SECONDS)
        wait_until(self.replicated, timeout=START_SECONDS)
        # Every sentinel knows the replica and the other sentinels: a failover can happen.
        wait_until(self._sentinels_ready, timeout=START_SECONDS)
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        self.url = f"redis+sentinel://{hosts}/{self.service}/0"

    def _sentinel(self) -> Process:
        port = free_port()
        config = self.folder / f"sentinel-{port}.conf"
        config.write_text(
            f"port {port}\nbind 127.0.0.1\nsentinel resolve-hostnames no\n"
            f"sentinel monitor {self.service} 127.0.0.1 {self.primary.port} 2\n"
            f"sentinel down-after-milliseconds {self.service} 1000\n"
            f"sentinel failover-timeout {self.service} 3000\n"
            f"sentinel parallel-syncs {self.service} 1\n"
        )
        process = Process(self.folder, port, [str(config), "--sentinel"])
        self.processes.append(process)
        return process

    def replicated(self) -> bool:
        client = plain(self.primary_port())
        try:
            info = client.info("replication")
            return bool(info.get("connected_slaves", 0) >= 1 and info.get("slave0", {})
                        .get("state") == "online")  # fmt: skip
        except redis.RedisError:
            return False
        finally:
            client.close()

    def _sentinels_ready(self) -> bool:
        for sentinel in self.sentinels:
            client = plain(sentinel.port, decode_responses=True)
            try:
                state = client.sentinel_master(self.service)
                if int(state["num-slaves"]) < 1 or int(state["num-other-sentinels"]) < 2:
                    return False
            except redis.RedisError:
                return False
            finally:
                client.close()
        return True

    def primary_port(self) -> int:
        client = plain(self.sentinels[0].port, decode_responses=True)
        try:
            return int(client.sentinel_get_master_addr_by_name(self.service)[1])
        finally:
            client.close()


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_ports(count: int) -> list[int]:
    """Free ports P at most 55535 whose cluster bus port P+10000 is free too."""
    ports: list[int] = []
    while len(ports) < count:
        port = random.randint(20000, 55535)
        if port not in ports and _free(port) and _free(port + 10000):
            ports.append(port)
    return ports


class Cluster(Group):
    """Three masters, no replicas, every slot assigned; ``url`` names the first node."""

    def __init__(self, masters: int = 3) -> None:
        super().__init__("dothis-cluster-")
        try:
            self._start(masters)
        except BaseException:
            self.stop()
            raise
        self.url = f"redis://127.0.0.1:{self.nodes[0].port}/0"

    def _start(self, masters: int) -> None:
        settings = ["--cluster-enabled", "yes", "--cluster-node-timeout", "2000",
                    "--cluster-config-file", "nodes.conf"]  # fmt: skip
        self.nodes = [self.start(["--port", str(port), *settings], port)
                      for port in cluster_ports(masters)]  # fmt: skip
        for node in self.nodes:
            wait_until(lambda n=node: _answers(lambda: plain(n.port)), timeout=START_SECONDS)
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        _run("redis-cli", "--cluster", "create", *addresses, "--cluster-yes", cwd=self.folder)
        wait_until(self._ok, timeout=START_SECONDS)

    def _ok(self) -> bool:
        for node in self.nodes:
            client = plain(node.port, decode_responses=True)
            try:
                if "cluster_state:ok" not in str(client.execute_command("CLUSTER", "INFO")):
                    return False
            except redis.RedisError:
                return False
            finally:
                client.close()
        return True


def elapsed(since: float) -> float:
    return round(time.monotonic() - since, 2)
