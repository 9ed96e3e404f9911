"""The ``dothis`` command: ``dothis worker``, ``dothis enqueue``, ``dothis info``."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import Any

import click

from dothis import codec
from dothis.errors import DothisError, TaskFailed, WaitTimeout
from dothis.producer import Queue
from dothis.protocol import (
    DEFAULT_HEARTBEAT_MS,
    DEFAULT_LEASE_MS,
    DEFAULT_MAX_CLAIMS,
    DEFAULT_MAX_FIELDS,
    DEFAULT_MAX_VALUE_BYTES,
    DEFAULT_QUEUE,
    DEFAULT_REAP_MS,
)

url_option = click.option(
    "--url", envvar="DOTHIS_REDIS_URL", default=None,
    help="Redis URL (default: $DOTHIS_REDIS_URL or redis://127.0.0.1:6379/0).",
)  # fmt: skip
queue_option = click.option("--queue", "-q", default=DEFAULT_QUEUE, show_default=True,
                            help="Queue name.")  # fmt: skip


@click.group()
@click.version_option(package_name="dothis")
def main() -> None:
    """dothis: a task queue with a language-neutral Redis protocol."""


@main.command()
@url_option
@queue_option
@click.option("--concurrency", "-c", default=1, show_default=True, help="Tasks run at once.")
@click.option("--worker-id", default=None, help="Worker id (default: a new UUID).")
@click.option(
    "--lease-ms",
    default=DEFAULT_LEASE_MS,
    show_default=True,
    help="Worker key TTL: how long after its last heartbeat a worker counts as dead.",
)
@click.option("--heartbeat-ms", default=DEFAULT_HEARTBEAT_MS, show_default=True)
@click.option(
    "--reap-ms",
    default=DEFAULT_REAP_MS,
    show_default=True,
    help="How often to look for tasks of dead workers.",
)
@click.option(
    "--max-claims",
    default=DEFAULT_MAX_CLAIMS,
    show_default=True,
    help="Claims after which a task whose worker keeps dying fails (worker-lost).",
)
@click.option("--max-value-bytes", default=DEFAULT_MAX_VALUE_BYTES, show_default=True)
@click.option("--max-fields", default=DEFAULT_MAX_FIELDS, show_default=True)
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
@click.argument("modules", nargs=-1, required=True)
def worker(
    url: str | None,
    queue: str,
    concurrency: int,
    worker_id: str | None,
    lease_ms: int,
    heartbeat_ms: int,
    reap_ms: int,
    max_claims: int,
    max_value_bytes: int,
    max_fields: int,
    log_level: str,
    modules: tuple[str, ...],
) -> None:
    """Run the functions that MODULES register (e.g. dothis.examples)."""
    from dothis.worker import Worker, WorkerOptions

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    sys.path.insert(0, os.getcwd())
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise click.ClickException(
                f"cannot import module {module!r} ({error}): is it installed, or on PYTHONPATH?"
            ) from error
    try:
        options = WorkerOptions(
            concurrency=concurrency,
            lease_ms=lease_ms,
            heartbeat_ms=heartbeat_ms,
            reap_ms=reap_ms,
            max_claims=max_claims,
            max_value_bytes=max_value_bytes,
            max_fields=max_fields,
        )
        runner = Worker(queue, url, worker_id=worker_id, options=options)
    except ValueError as error:
        raise click.UsageError(str(error)) from error
    try:
        runner.run()
    except DothisError as error:
        raise click.ClickException(str(error)) from error
    if runner._forced.is_set():
        # Threads still running plain functions cannot be stopped; their tasks are back in pending.
        logging.shutdown()
        os._exit(1)


def _parse_pairs(pairs: tuple[str, ...]) -> dict[str, Any]:
    args: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint="-a/--arg")
        try:
            args[name] = codec.decode(raw)
        except ValueError:
            args[name] = raw  # not JSON: a plain string
    return args


@main.command()
@url_option
@queue_option
@click.argument("function")
@click.option("--args", "args_json", default=None, help="Arguments as a JSON object: '{\"a\": 1}'.")
@click.option(
    "--arg",
    "-a",
    "pairs",
    multiple=True,
    help="One argument NAME=VALUE (VALUE read as JSON, else as a string).",
)
@click.option("--id", "task_id", default=None, help="A custom task id.")
@click.option("--wait", is_flag=True, help="Wait for the outcome and print the value.")
@click.option("--timeout", default=30.0, show_default=True, help="Seconds --wait waits.")
def enqueue(
    url: str | None,
    queue: str,
    function: str,
    args_json: str | None,
    pairs: tuple[str, ...],
    task_id: str | None,
    wait: bool,
    timeout: float,
) -> None:
    """Queue FUNCTION and print the task id (with --wait, print its value as JSON)."""
    args: dict[str, Any] = {}
    if args_json is not None:
        try:
            args = codec.decode(args_json)
        except ValueError as error:
            raise click.BadParameter(f"not JSON: {error}", param_hint="--args") from error
        if not isinstance(args, dict):
            raise click.BadParameter("must be a JSON object", param_hint="--args")
    args.update(_parse_pairs(pairs))
    try:
        with Queue(queue, url) as target:
            task = target.enqueue_call(function, args, task_id=task_id)
            click.echo(task.id)
            if wait:
                click.echo(codec.encode(task.wait(timeout)))
    except TaskFailed as error:
        click.echo(f"failed ({error.code}): {error.reason}", err=True)
        sys.exit(1)
    except WaitTimeout as error:
        click.echo(str(error), err=True)
        sys.exit(2)
    except DothisError as error:
        raise click.ClickException(str(error)) from error


@main.command()
@url_option
@queue_option
def info(url: str | None, queue: str) -> None:
    """Show the lengths of a queue's lists and its live workers."""
    from dothis.inspection import queue_info

    try:
        with Queue(queue, url) as target:
            summary = queue_info(target)
    except DothisError as error:
        raise click.ClickException(str(error)) from error
    for name in ("pending", "executing", "rejected"):
        click.echo(f"{name:10} {summary[name]}")
    click.echo(f"workers    {len(summary['workers'])}")
    for item in summary["workers"]:
        click.echo(
            f"  {item.get('id')}  {item.get('host')}:{item.get('pid')}  "
            f"heartbeat {item.get('heartbeat')}"
        )
