"""A redis-server of this package's own, and users made with the exact lines ``dothis acl``
prints, run through redis-cli as an administrator would."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator

import pytest
from click.testing import CliRunner
from support import RedisServer

from dothis.cli import main

MakeUser = Callable[..., str]


@pytest.fixture(scope="module")
def acl_server() -> Iterator[RedisServer]:
    server = RedisServer()
    yield server
    server.stop()


def acl_line(role: str, *queues: str, user: str) -> str:
    """The line ``dothis acl`` prints (its one line of stdout)."""
    args = ["acl", "--role", role, "--user", user]
    for queue in queues:
        args += ["--queue", queue]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"ACL SETUSER {user} reset on >")
    return lines[0]


def password_of(line: str) -> str:
    return line.split(" ")[5].removeprefix(">")


@pytest.fixture
def make_user(acl_server: RedisServer) -> MakeUser:
    """``make_user(role, *queues)``: run the line through redis-cli; the user's URL."""
    cli = shutil.which("redis-cli")
    if cli is None:
        pytest.skip("redis-cli is not installed")

    def make(role: str, *queues: str) -> str:
        user = f"{role}-{uuid.uuid4().hex[:8]}"
        line = acl_line(role, *queues, user=user)
        done = subprocess.run([cli, "-p", str(acl_server.port)], input=line, text=True,
                              capture_output=True, timeout=10, check=True)  # fmt: skip
        assert done.stdout.strip() == "OK", done.stdout + done.stderr
        return f"redis://{user}:{password_of(line)}@127.0.0.1:{acl_server.port}/0"

    return make


@pytest.fixture
def tagged() -> Callable[[], str]:
    """A fresh queue name with a hash tag, as on a cluster."""
    return lambda: "{acl" + uuid.uuid4().hex[:10] + "}"


def as_json(text: str) -> object:
    return json.loads(text)
