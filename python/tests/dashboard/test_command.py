"""``dothis dashboard``: the refusal to expose actions, its options, and the security checks."""

from __future__ import annotations

import base64
import http.client
import subprocess
import sys

import pytest
from click.testing import CliRunner
from starlette.requests import Request
from support import free_port, wait_until

from dothis.cli import main
from dothis.dashboard import DashboardExposed, check_exposure
from dothis.dashboard.security import basic_check, is_loopback, parse_credentials


def test_actions_beyond_loopback_need_a_login(url: str) -> None:
    result = CliRunner().invoke(main, ["dashboard", "--url", url, "--host", "0.0.0.0"])
    assert result.exit_code == 1
    assert "beyond loopback" in result.output and "--auth user:password" in result.output
    assert "--read-only" in result.output and "Traceback" not in result.output
    with pytest.raises(DashboardExposed):
        check_exposure("192.168.1.10", read_only=False, auth=None)
    check_exposure("0.0.0.0", read_only=True, auth=None)  # nothing to protect
    check_exposure("0.0.0.0", read_only=False, auth=("a", "b"))
    check_exposure("::1", read_only=False, auth=None)


def test_bad_credentials_are_refused_at_start(url: str) -> None:
    result = CliRunner().invoke(main, ["dashboard", "--url", url, "--auth", "nopassword"])
    assert result.exit_code == 1 and "--auth takes user:password" in result.output


def test_a_wrong_url_fails_at_start() -> None:
    port = free_port()  # nothing listens there
    result = CliRunner().invoke(main, ["dashboard", "--url", f"redis://127.0.0.1:{port}/0"])
    assert result.exit_code == 1 and "error:" in result.output
    assert "Traceback" not in result.output


def test_the_command_serves_until_stopped(url: str) -> None:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "dothis", "dashboard", "--url", url,
                                "--port", str(port), "--read-only"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    try:

        def answers() -> int:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                connection.request("GET", "/api/counts")
                return connection.getresponse().status
            except OSError:
                return 0

        assert wait_until(answers, timeout=20) == 200
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_security_pieces() -> None:
    assert parse_credentials("admin:s3:cret") == ("admin", "s3:cret")
    assert is_loopback("127.0.0.2") and is_loopback("localhost") and is_loopback("[::1]")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.com")
    check = basic_check("admin", "s3cret")

    def request(header: str) -> Request:
        return Request({"type": "http", "headers": [(b"authorization", header.encode())]})

    good = base64.b64encode(b"admin:s3cret").decode()
    assert check(request(f"Basic {good}")) is True
    assert check(request("Basic !!!")) is False and check(request(f"Bearer {good}")) is False
    assert check(request(f"Basic {base64.b64encode(b'admin:wrong').decode()}")) is False
