"""``dothis worker`` (and ``dothis metrics``) as real processes: --burst, the TTL flags, settings
from the environment and the config file, JSON logs, the metrics port, a module that is not
there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner
from support import WorkerProcess, free_port, wait_until

from dothis import Queue, WorkerOptions
from dothis.cli import main
from dothis.cli import worker as cli_worker

pytestmark = pytest.mark.integration


def fetch(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as reply:
            return str(reply.read().decode())
    except OSError:
        return ""


def burst(url: str, queue: str, *options: str, env: dict[str, str] | None = None) -> str:
    """Run ``dothis worker --burst`` to its end; its output."""
    worker = WorkerProcess(url, queue, "--burst", "--pool", "thread", *options, env=env)
    try:
        assert worker.wait(timeout=30) == 0, worker.output()
        return worker.output()
    finally:
        worker.stop()


def test_burst_runs_what_is_queued_and_exits(url: str, queue_name: str, r: redis.Redis) -> None:
    with Queue(queue_name, url) as queue:
        done, failed = queue.enqueue("echo", text="x"), queue.enqueue("fail", message="no")
    output = burst(url, queue_name, "--result-ttl", "123", "--failure-ttl", "456")
    assert r.hget(done.key, "result") == b"successful", output
    assert r.hget(failed.key, "result") == b"failed"
    assert 100 < r.ttl(done.key) <= 123 and 400 < r.ttl(failed.key) <= 456


@pytest.mark.parametrize(("env_ttl", "expected"), [(None, 50), ("77", 77)])
def test_worker_settings_from_env_and_config(url: str, queue_name: str, r: redis.Redis,
                                             tmp_path: Path, env_ttl: str | None,
                                             expected: int) -> None:  # fmt: skip
    config = tmp_path / "dothis.toml"
    config.write_text("[worker]\nresult_ttl = 50\nlog_format = 'json'\n")
    env = {"DOTHIS_CONFIG": str(config)}
    if env_ttl is not None:
        env["DOTHIS_WORKER_RESULT_TTL"] = env_ttl
    with Queue(queue_name, url) as queue:
        task = queue.enqueue("echo", text="x")
    output = burst(url, queue_name, env=env)
    assert expected - 5 < r.ttl(task.key) <= expected, output
    lines = [line for line in output.splitlines() if line.startswith("{")]
    assert lines and all("level" in json.loads(line) for line in lines), output


def test_every_flag_reaches_worker_options(url: str, queue_name: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """The flags become WorkerOptions as they are (the worker itself is not run here)."""
    made: list[Any] = []

    class Recorded:
        def __init__(self, queues: list[str], url: str | None, **kwargs: Any) -> None:
            made.append((queues, url, kwargs))
            self.forced = threading.Event()

        def run(self) -> None:
            pass

    monkeypatch.setattr(cli_worker, "Worker", Recorded)
    monkeypatch.setattr(cli_worker, "configure_logging", lambda level, fmt: made.append(
        (level, fmt)))  # fmt: skip
    args = ["worker", "--url", url, "-q", queue_name, "-q", "low", "--burst", "--result-ttl",
            "5", "--failure-ttl", "-1", "--metrics-port", "9999", "--metrics-host", "0.0.0.0",
            "-c", "3", "--prefetch", "2", "--pool", "thread", "--timeout", "1.5",
            "--grace-seconds", "4", "--worker-id", "w-7", "--log-format", "json",
            "--log-level", "debug", "--processes", "1", "dothis.examples"]  # fmt: skip
    result = CliRunner().invoke(main, args, env={"DOTHIS_CONFIG": None})
    assert result.exit_code == 0, result.output
    (queues, got_url, kwargs), logging_setup = made
    assert (queues, got_url, kwargs["worker_id"]) == ([queue_name, "low"], url, "w-7")
    assert logging_setup == ("debug", "json")
    assert kwargs["options"] == WorkerOptions(
        burst=True, result_ttl=5, failure_ttl=-1, metrics_port=9999, metrics_host="0.0.0.0",
        concurrency=3, prefetch=2, pool="thread", timeout=1.5, grace_seconds=4.0)  # fmt: skip


def test_a_module_that_is_not_there(url: str, spawn_worker: Any) -> None:
    worker = spawn_worker(modules=("no_such_module_here",))
    assert worker.wait(timeout=30) == 1
    output = worker.output()
    assert "error: cannot import module 'no_such_module_here'" in output, output
    assert "Traceback" not in output


def test_dothis_metrics_serves_queue_gauges(url: str, queue_name: str) -> None:
    with Queue(queue_name, url) as queue:
        queue.enqueue("echo", text="x")
    port = free_port()
    args = [sys.executable, "-m", "dothis", "metrics", "--url", url, "-q", queue_name, "--port",
            str(port)]  # fmt: skip
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "DOTHIS_CONFIG": ""})  # fmt: skip
    try:
        text = wait_until(lambda: fetch(port), timeout=20)
        assert f'dothis_queue_tasks{{queue="{queue_name}",state="pending"}} 1.0' in text, text
    finally:
        process.kill()
        process.wait(timeout=10)


def test_prefetch_is_auto_unless_given_a_count() -> None:
    from dothis.cli.worker import PREFETCH

    assert PREFETCH.convert("auto", None, None) is None
    assert PREFETCH.convert("0", None, None) == 0
    assert PREFETCH.convert("12", None, None) == 12
    result = CliRunner().invoke(main, ["worker", "--prefetch", "lots", "dothis.examples"],
                                env={"DOTHIS_CONFIG": None})  # fmt: skip
    assert result.exit_code == 2
    assert "'lots' is neither a count of tasks (0 or more) nor auto" in result.output
