"""The package as a user installs it: a built wheel, not the repository's editable checkout.

The wheel carries its own copy of lua/ and schema/ (pyproject.toml's force-include); these tests
import dothis from the unpacked wheel alone and run a task through a real redis-server with it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from support import RedisServer

PYTHON_DIR = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built wheel, unpacked into a folder that goes first on PYTHONPATH."""
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp / "dist"), str(PYTHON_DIR)], check=True,
                   capture_output=True, cwd=tmp)  # fmt: skip
    (wheel,) = (tmp / "dist").glob("dothis-*.whl")
    target = tmp / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(target)
    return target


def run_python(site: Path, code: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run([sys.executable, "-c", code], check=False, env=env,
                          capture_output=True, text=True, timeout=60, cwd=site)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_wheel_carries_its_scripts_and_schemas(unpacked: Path) -> None:
    out = run_python(unpacked, "import dothis, json\n"
                     "from dothis.store.resources import protocol_dir\n"
                     "print(json.dumps([dothis.__file__, str(protocol_dir('lua')),"
                     " str(protocol_dir('schema'))]))")  # fmt: skip
    module, lua, schema = (Path(p) for p in json.loads(out))
    assert module.is_relative_to(unpacked)  # the wheel's copy, not the checkout's
    assert lua == unpacked / "dothis" / "_protocol" / "lua"
    assert (lua / "start.lua").is_file() and (schema / "protocol.json").is_file()


def test_a_task_runs_from_the_wheel(unpacked: Path, redis_server: RedisServer) -> None:
    code = (
        "from dothis import Queue\n"
        "from dothis.worker import Worker, WorkerOptions\n"
        f"q = Queue('wheel', url={redis_server.url!r})\n"
        "task = q.enqueue('echo', text='from the wheel')\n"
        "import dothis.examples\n"
        "w = Worker('wheel', q.url, options=WorkerOptions(pool='inline', burst=True))\n"
        "w.run()\n"
        "print(task.wait(timeout=10))\n"
    )
    assert run_python(unpacked, code).strip() == "from the wheel"
