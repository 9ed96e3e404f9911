"""The ``dothis`` command as its own process: the garbage collector is kept off start-up's
objects (paused while the command's module loads, those objects frozen) and is on again for the
command itself; called from code, the command leaves the collector alone."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
import taskfns  # noqa: F401  (registers echo with the default registry)

pytestmark = pytest.mark.integration

# Prints the collector's state inside a command and after the group returns.
PROBE = """
import gc, sys
import click
from dothis.cli import main

@click.command()
def probe():
    click.echo(f"in the command: {gc.isenabled()} {gc.get_freeze_count() > 0}")

main.add_command(probe)
try:
    main(ARGS)
except SystemExit as stop:
    assert stop.code in (0, None), stop.code
print(f"after: {gc.isenabled()} {gc.get_freeze_count() > 0}")
"""


def run(code: str, *args: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOTHIS_")}
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=60, check=False, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_as_the_process_command_the_collector_runs_for_the_command() -> None:
    lines = run("import sys; sys.argv = ['dothis', 'probe']\n" + PROBE.replace("ARGS", ""))
    # on for the command (a worker runs for days), start-up's objects frozen; frozen at the end
    assert lines == ["in the command: True True", "after: True True"]


def test_called_from_code_the_collector_is_left_alone() -> None:
    lines = run(PROBE.replace("ARGS", "['probe'], standalone_mode=False"))
    assert lines == ["in the command: True False", "after: True False"]


def test_enqueue_wait_as_a_process(url: str, queue_name: str, start_worker: Any) -> None:
    start_worker()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOTHIS_")}
    done = subprocess.run(
        [sys.executable, "-m", "dothis", "enqueue", "--url", url, "-q", queue_name, "echo",
         "text=ooh yeeah", "--wait"],
        capture_output=True, text=True, timeout=60, check=False, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1] == '"ooh yeeah"'
