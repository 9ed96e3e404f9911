"""The ``dothis`` command: ``dothis worker``, ``dothis enqueue``, ``dothis info``."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from dothis.errors import DothisError, TaskFailed, TaskNotFound, WaitTimeout
from dothis.producer.inspection import queue_info
from dothis.producer.queue import Queue
from dothis.wire import codec
from dothis.wire.protocol import DEFAULT_QUEUE
from dothis.worker import Worker, WorkerOptions

DEFAULTS = {field.name: field.default for field in dataclasses.fields(WorkerOptions)}


def _default(name: str) -> Any:
    """A worker flag's default: WorkerOptions' own, so the two never disagree."""
    return DEFAULTS[name]


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
@click.option(
    "--queue",
    "-q",
    "queues",
    multiple=True,
    default=(DEFAULT_QUEUE,),
    show_default=True,
    help="Queue to serve; repeat for several, highest priority first.",
)
@click.option(
    "--concurrency",
    "-c",
    default=_default("concurrency"),
    show_default=True,
    help="Tasks run at once.",
)
@click.option(
    "--prefetch",
    default=_default("prefetch"),
    show_default=True,
    help="Tasks claimed ahead of free slots (they wait in executing, owned by this "
    "worker, and are recovered if it dies).",
)
@click.option(
    "--pool",
    type=click.Choice(["process", "thread", "inline"]),
    default=_default("pool"),
    show_default=True,
    help="Where plain functions run: child processes (a try can be stopped at its timeout), "
    "threads, or inline on the worker's event loop (fastest; for short functions only: "
    "timeouts are not enforced and heartbeats wait for each call).",
)
@click.option(
    "--timeout",
    type=float,
    default=None,
    help="Seconds a try may run when its task sets no timeout (default: no limit).",
)
@click.option(
    "--retry-base-ms",
    default=_default("retry_base_ms"),
    show_default=True,
    help="Backoff before the first retry; doubles per retry, with jitter.",
)
@click.option("--retry-max-ms", default=_default("retry_max_ms"), show_default=True)
@click.option(
    "--schedule-ms",
    default=_default("schedule_ms"),
    show_default=True,
    help="How often to move due scheduled tasks to pending.",
)
@click.option("--worker-id", default=None, help="Worker id (default: a new UUID).")
@click.option(
    "--lease-ms",
    default=_default("lease_ms"),
    show_default=True,
    help="Worker key TTL: how long after its last heartbeat a worker counts as dead.",
)
@click.option("--heartbeat-ms", default=_default("heartbeat_ms"), show_default=True)
@click.option(
    "--reap-ms",
    default=_default("reap_ms"),
    show_default=True,
    help="How often to look for tasks of dead workers.",
)
@click.option(
    "--max-claims",
    default=_default("max_claims"),
    show_default=True,
    help="Claims after which a task whose worker keeps dying fails (worker-lost).",
)
@click.option("--max-value-bytes", default=_default("max_value_bytes"), show_default=True)
@click.option("--max-fields", default=_default("max_fields"), show_default=True)
@click.option(
    "--grace-seconds",
    default=_default("grace_seconds"),
    show_default=True,
    help="After SIGTERM, how long running tasks may finish before they go back to "
    "pending (a second signal does it at once).",
)
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
@click.argument("modules", nargs=-1, required=True)
def worker(
    url: str | None,
    queues: tuple[str, ...],
    concurrency: int,
    prefetch: int,
    pool: str,
    timeout: float | None,
    retry_base_ms: int,
    retry_max_ms: int,
    schedule_ms: int,
    worker_id: str | None,
    lease_ms: int,
    heartbeat_ms: int,
    reap_ms: int,
    max_claims: int,
    max_value_bytes: int,
    max_fields: int,
    grace_seconds: float,
    log_level: str,
    modules: tuple[str, ...],
) -> None:
    """Run the functions that MODULES register: module names (dothis.examples) or paths to
    Python files (./mytasks.py)."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    sys.path.insert(0, os.getcwd())
    for module in modules:
        _load(module)
    try:
        options = WorkerOptions(
            concurrency=concurrency,
            prefetch=prefetch,
            pool=pool,
            timeout=timeout,
            retry_base_ms=retry_base_ms,
            retry_max_ms=retry_max_ms,
            schedule_ms=schedule_ms,
            lease_ms=lease_ms,
            heartbeat_ms=heartbeat_ms,
            reap_ms=reap_ms,
            max_claims=max_claims,
            max_value_bytes=max_value_bytes,
            max_fields=max_fields,
            grace_seconds=grace_seconds,
        )
        serving = Worker(list(queues), url, worker_id=worker_id, options=options)
    except ValueError as error:
        raise click.UsageError(str(error)) from error
    try:
        serving.run()
    except DothisError as error:
        raise click.ClickException(str(error)) from error
    if serving.forced.is_set():
        # Threads still running plain functions cannot be stopped; their tasks are back in pending.
        logging.shutdown()
        os._exit(1)


def _load(module: str) -> None:
    """Import a module by name, or run a Python file given by its path, for its registrations."""
    path = Path(module)
    if module.endswith(".py") or os.sep in module or path.is_file():
        if not path.is_file():
            raise click.ClickException(f"no such file: {module}")
        sys.path.insert(0, str(path.resolve().parent))
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise click.ClickException(f"cannot load {module} as a Python module")
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = loaded
        spec.loader.exec_module(loaded)
        return
    try:
        importlib.import_module(module)
    except ImportError as error:
        raise click.ClickException(
            f"cannot import module {module!r} ({error}): is it installed, or on PYTHONPATH? "
            "(a file can be given by its path: ./mytasks.py)"
        ) from error


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
@click.option("--attempts", type=int, default=None, help="Total tries (retries after failures).")
@click.option("--task-timeout", type=float, default=None, help="Seconds a try may run.")
@click.option("--wait", is_flag=True, help="Wait for the outcome and print the value.")
@click.option("--timeout", default=30.0, show_default=True, help="Seconds --wait waits.")
def enqueue(
    url: str | None,
    queue: str,
    function: str,
    args_json: str | None,
    pairs: tuple[str, ...],
    task_id: str | None,
    attempts: int | None,
    task_timeout: float | None,
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
            task = target.enqueue_call(
                function, args, task_id=task_id, attempts=attempts, timeout=task_timeout
            )
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
    try:
        with Queue(queue, url) as target:
            summary = queue_info(target)
    except DothisError as error:
        raise click.ClickException(str(error)) from error
    for name in ("pending", "scheduled", "executing", "succeeded", "failed", "rejected"):
        click.echo(f"{name:10} {summary[name]}")
    click.echo(f"workers    {len(summary['workers'])}")
    for item in summary["workers"]:
        click.echo(
            f"  {item.get('id')}  {item.get('host')}:{item.get('pid')}  "
            f"heartbeat {item.get('heartbeat')}"
        )


REQUEUE_OUTCOMES = {
    "requeued": "requeued",
    "not-failed": "not in the failed set",
    "gone": "its hash is gone (expired): removed from the failed set",
    "not-finished": "not requeued: it is not a failed task now (its id runs or waits again, or "
    "succeeded): removed from the failed set",
}


@main.command()
@url_option
@queue_option
@click.option("--requeue", "requeue_ids", multiple=True, help="Requeue this failed task id.")
@click.option("--requeue-all", is_flag=True, help="Requeue every failed task.")
@click.option("--count", default=20, show_default=True, help="How many to list.")
def failed(
    url: str | None, queue: str, requeue_ids: tuple[str, ...], requeue_all: bool, count: int
) -> None:
    """List failed tasks (newest first) or requeue them."""
    try:
        with Queue(queue, url) as target:
            if requeue_all:
                requeue_ids = tuple(task.id for task in target.failed(0, 1_000_000))
            if requeue_ids:
                for task_id in requeue_ids:
                    outcome = target.requeue_outcome(task_id)
                    click.echo(f"{task_id}  {REQUEUE_OUTCOMES.get(outcome, outcome)}")
                return
            for task in target.failed(0, count):
                info = task.refresh()
                if info is None:
                    click.echo(f"{task.id}  (hash expired)")
                    continue
                code, reason = info.fields.get("error-code"), info.fields.get("error-reason", "")
                click.echo(
                    f"{task.id}  {info.fields.get('finished-created')}  {info.function}  "
                    f"{code}: {reason[:100]}"
                )
    except DothisError as error:
        raise click.ClickException(str(error)) from error


@main.command()
@url_option
@queue_option
@click.argument("task_ids", nargs=-1, required=True)
def cancel(url: str | None, queue: str, task_ids: tuple[str, ...]) -> None:
    """Cancel tasks: at once if they have not started, by request if they are running.

    Every id is tried; the exit status is 1 when any of them is not a task of the queue."""
    missing = 0
    try:
        with Queue(queue, url) as target:
            for task_id in task_ids:
                try:
                    click.echo(f"{task_id}  {target.cancel(task_id)}")
                except TaskNotFound:
                    missing += 1
                    click.echo(f"{task_id}  not found in queue {queue!r}")
    except DothisError as error:
        raise click.ClickException(str(error)) from error
    if missing:
        sys.exit(1)
