"""TLS: rediss:// with a CA made by openssl, for the producer, the worker and the CLI; a
certificate that no trusted CA signed is refused with an error naming the fix."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from support import WorkerProcess

from dothis import Queue
from dothis.errors import ConnectionFailed, InvalidUrl
from topology.servers import TlsServer

pytestmark = pytest.mark.integration


def _dothis(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "dothis", *args]
    environment = {**os.environ, **(env or {})}
    return subprocess.run(command, check=False, capture_output=True, text=True, timeout=30,
                          env=environment)  # fmt: skip


def test_producer_and_worker_over_tls(tls_server: TlsServer, name: str) -> None:
    ca = str(tls_server.ca[0])
    worker = WorkerProcess(tls_server.url, name, "--tls-ca", ca)
    try:
        with Queue(name, tls_server.url, tls_ca=ca) as queue:
            assert queue.enqueue("add", a=2, b=3).wait(timeout=15) == 5
    finally:
        worker.stop()
    assert "Traceback" not in worker.output()


def test_client_certificate(tls_server: TlsServer, name: str) -> None:
    cert, key = (str(path) for path in tls_server.client_cert)
    with Queue(name, tls_server.url, tls_ca=str(tls_server.ca[0]), tls_cert=cert,
               tls_key=key) as queue:  # fmt: skip
        queue.enqueue("echo", text="x")
        assert len(queue.task_ids()) == 1


def test_cli_enqueue_wait_over_tls(tls_server: TlsServer, name: str) -> None:
    env = {"DOTHIS_TLS_CA": str(tls_server.ca[0])}
    worker = WorkerProcess(tls_server.url, name, env=env)
    try:
        done = _dothis("enqueue", "--url", tls_server.url, "--queue", name, "echo",
                       "-a", "text=over tls", "--wait", "--timeout", "15", env=env)  # fmt: skip
    finally:
        worker.stop()
    assert done.returncode == 0, done.stderr
    assert '"over tls"' in done.stdout


def test_untrusted_certificate_is_refused(tls_server: TlsServer, name: str) -> None:
    other = str(tls_server.other_ca[0])
    with pytest.raises(ConnectionFailed) as refused, Queue(name, tls_server.url,
                                                           tls_ca=other) as queue:  # fmt: skip
        queue.enqueue("echo", text="x")
    assert "certificate" in str(refused.value) and "--tls-ca" in str(refused.value)
    done = _dothis("enqueue", "--url", tls_server.url, "--tls-ca", other, "--queue", name,
                   "echo", "-a", "text=x")  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith("error: TLS with Redis at rediss://127.0.0.1:")
    assert "--tls-ca" in done.stderr and "Traceback" not in done.stderr
    worker = WorkerProcess(tls_server.url, name, "--tls-ca", other)
    try:
        assert worker.wait(timeout=20) == 1
    finally:
        worker.stop()
    assert "error: TLS with Redis" in worker.output() and "Traceback" not in worker.output()


def test_tls_file_with_a_plain_url_is_refused(name: str) -> None:
    with pytest.raises(InvalidUrl, match="rediss://"):
        Queue(name, "redis://127.0.0.1:1/0", tls_ca="/nonexistent/ca.pem")
