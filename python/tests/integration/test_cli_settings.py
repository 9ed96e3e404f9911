"""The ``dothis`` command's settings and errors: a flag wins over its environment variable, which
wins over the config file, which wins over the default; every error a user can hit is one line,
``error: <message>``, with no traceback."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner, Result
from support import free_port

from dothis.cli import main
from dothis.cli.worker import TUNING
from dothis.wire.protocol import DEFAULT_QUEUE
from dothis.worker import WorkerOptions

pytestmark = pytest.mark.integration

# No setting leaks in from the environment the tests run in.
CLEAN = {"DOTHIS_QUEUE": None, "DOTHIS_CONFIG": None, "DOTHIS_INFO_JSON": None}


def run(*args: str, env: dict[str, str | None] | None = None, **kwargs: Any) -> Result:
    return CliRunner().invoke(main, list(args), env={**CLEAN, **(env or {})}, **kwargs)


def shown_queues(result: Result) -> list[str]:
    assert result.exit_code == 0, result.output
    return [item["queue"] for item in json.loads(result.stdout)["queues"]]


def assert_one_error_line(result: Result, text: str, exit_code: int = 1) -> None:
    assert result.exit_code == exit_code, result.output
    assert result.stderr.startswith("error: ") and text in result.stderr, result.stderr
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "dothis.toml"
    path.write_text('queue = "from-config"\n')
    return path


def test_the_config_file_sets_a_default(url: str, config: Path) -> None:
    assert shown_queues(run("--config", str(config), "info", "--url", url, "--json")) == [
        "from-config"
    ]
    by_env = run("info", "--url", url, "--json", env={"DOTHIS_CONFIG": str(config)})
    assert shown_queues(by_env) == ["from-config"]
    after = run("info", "--config", str(config), "--url", url, "--json")  # after the command too
    assert shown_queues(after) == ["from-config"]


def test_env_beats_the_config_file_and_a_flag_beats_both(url: str, config: Path) -> None:
    env = {"DOTHIS_CONFIG": str(config), "DOTHIS_QUEUE": "from-env"}
    assert shown_queues(run("info", "--url", url, "--json", env=env)) == ["from-env"]
    flagged = run("info", "--url", url, "--json", "-q", "from-flag", env=env)
    assert shown_queues(flagged) == ["from-flag"]


def test_a_command_table_beats_the_top_level(url: str, tmp_path: Path) -> None:
    path = tmp_path / "dothis.toml"
    path.write_text(f'url = "{url}"\nqueue = "top"\njson = true\n\n[info]\nqueue = ["a", "b"]\n')
    assert shown_queues(run("--config", str(path), "info")) == ["a", "b"]
    checked = run("--config", str(path), "check")
    assert [item["queue"] for item in json.loads(checked.stdout)["queues"]] == ["top"]


def test_the_url_comes_from_flag_env_or_config(url: str, tmp_path: Path) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    path = tmp_path / "dothis.toml"
    path.write_text(f'url = "{nowhere}"\n')
    args = ("--config", str(path), "info", "-q", "x", "--json")
    assert run(*args).exit_code == 1  # the config file's URL: nothing listens there
    assert run(*args, env={"DOTHIS_REDIS_URL": url}).exit_code == 0
    assert run(*args, "--url", url, env={"DOTHIS_REDIS_URL": nowhere}).exit_code == 0


def test_other_settings_come_from_dothis_command_option(url: str, queue_name: str) -> None:
    env = {"DOTHIS_REDIS_URL": url, "DOTHIS_QUEUE": queue_name, "DOTHIS_CHECK_MAX_AGE": "7"}
    assert json.loads(run("check", "--json", env=env).stdout)["max_age"] == 7


def test_the_defaults() -> None:
    """--queue is the protocol's default queue; each worker flag has WorkerOptions' default."""
    commands: Any = main.commands
    for name in ("enqueue", "inspect", "failed", "cancel", "empty", "purge", "requeue"):
        queue = next(p for p in commands[name].params if p.name == "queue")
        assert queue.default == DEFAULT_QUEUE, name
    fields = {field.name: field.default for field in dataclasses.fields(WorkerOptions)}
    flags = {p.name: p.default for p in commands["worker"].params}
    for name, _, settings in TUNING:
        param = next(p for p in commands["worker"].params if p.name == name)
        # a flag with a type of its own converts its default to the field's ("auto": None)
        default = param.type.convert(flags[name], param, None) if "type" in settings \
            and flags[name] is not None else flags[name]  # fmt: skip
        assert default == fields[name], name


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('qeueu = "x"\n', "unknown setting 'qeueu'"),
        ("[info]\nconcurrency = 3\n", "[info] has no setting 'concurrency'"),
        ('[nosuch]\nqueue = "x"\n', "no command 'nosuch'"),
        ("queue = \n", "config file"),
    ],
)
def test_config_file_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert_one_error_line(run("--config", str(path), "info"), message)


def test_a_missing_config_file(tmp_path: Path) -> None:
    assert_one_error_line(run("--config", str(tmp_path / "nope.toml"), "info"), "nope.toml")


def test_errors_are_one_line(url: str, queue_name: str, r: redis.Redis) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    assert_one_error_line(run("info", "--url", nowhere, "-q", "q"), "127.0.0.1")
    assert_one_error_line(run("enqueue", "--url", nowhere, "echo"), "127.0.0.1")
    assert_one_error_line(run("inspect", "--url", url, "-q", queue_name, "nope"),
                          f"no task 'nope' in queue '{queue_name}'")  # fmt: skip
    assert_one_error_line(run("enqueue", "--url", url, "-q", queue_name, "echo", "--attempts",
                              "0"), "attempts must be a positive int")  # fmt: skip
    assert_one_error_line(run("enqueue", "--url", url, "-q", "", "echo"), "queue name")
    assert_one_error_line(run("enqueue", "--url", url, "-q", queue_name, "echo", "--delay", "5",
                              "--depends-on", "x"), "cannot also have delay")  # fmt: skip
    r.set(f"{queue_name}:pending", "not a list")  # a key written by hand, of the wrong type
    try:
        assert_one_error_line(run("info", "--url", url, "-q", queue_name), "wrong type")
        assert_one_error_line(run("check", "--url", url, "-q", queue_name), "wrong type")
    finally:
        r.delete(f"{queue_name}:pending")


def test_bad_flags_are_usage_errors(url: str) -> None:
    result = run("enqueue", "--url", url, "echo", "--at", "tomorrow")
    assert result.exit_code == 2 and "is not an ISO-8601 time" in result.output
    result = run("enqueue", "--url", url, "echo", "text")
    assert result.exit_code == 2 and "'text' is not NAME=VALUE" in result.output
    result = run("enqueue", "--url", url, "echo", "--args", "[1]")
    assert result.exit_code == 2 and "must be a JSON object" in result.output
    result = run("worker", "--url", url, "--concurrency", "0", "dothis.examples")
    assert result.exit_code == 2 and "concurrency must be at least 1" in result.output
    assert "Traceback" not in result.output


def test_help_names_every_command() -> None:
    result = run("--help")
    for name in ("worker", "enqueue", "info", "inspect", "check", "failed", "requeue", "cancel",
                 "empty", "purge", "metrics", "dashboard", "acl", "delete"):  # fmt: skip
        assert f"  {name} " in result.output, name
    assert run("--version").exit_code == 0
