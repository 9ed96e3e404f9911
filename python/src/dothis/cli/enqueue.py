"""``dothis enqueue``: queue one task, with every option Queue.enqueue takes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from dothis.cli.common import StillRunning, queue_option, url_option
from dothis.cli.config import config_option
from dothis.errors import WaitTimeout
from dothis.producer.queue import Queue
from dothis.wire import codec
from dothis.wire.shards import MAX_SHARDS


def _pairs(_ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, Any]:
    """``NAME=VALUE`` arguments: VALUE read as JSON, else taken as a string."""
    args: dict[str, Any] = {}
    for pair in values:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{pair!r} is not NAME=VALUE", param=param)
        try:
            args[name] = codec.decode(raw)
        except ValueError:
            args[name] = raw
    return args


def _json_object(
    _ctx: click.Context, param: click.Parameter, value: str | None
) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        decoded = codec.decode(value)
    except ValueError as error:
        raise click.BadParameter(f"not JSON: {error}", param=param) from error
    if not isinstance(decoded, dict):
        raise click.BadParameter("must be a JSON object", param=param)
    return decoded


def _iso_time(_ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """An ISO-8601 moment; without an offset it is read as UTC (as Queue.enqueue reads it)."""
    try:
        return None if value is None else datetime.fromisoformat(value)
    except ValueError as error:
        raise click.BadParameter(
            f"{value!r} is not an ISO-8601 time (2027-01-01T09:30:00Z)", param=param
        ) from error


@click.command()
@config_option(None)
@url_option
@queue_option
@click.argument("function")
@click.argument("pairs", nargs=-1, callback=_pairs)
@click.option("--args", "args_json", callback=_json_object, help="Arguments as a JSON object: "
              "'{\"a\": 1}'.")  # fmt: skip
@click.option("--arg", "-a", "more_pairs", multiple=True, callback=_pairs,
              help="One argument NAME=VALUE (VALUE read as JSON, else as a string).")  # fmt: skip
@click.option("--id", "task_id", help="A custom task id (refused while a task with it is "
              "unfinished).")  # fmt: skip
@click.option("--delay", type=float, help="Seconds to wait before it may start.")
@click.option("--at", callback=_iso_time, help="When it may start (ISO-8601; UTC unless it says).")
@click.option("--depends-on", multiple=True, help="A task id that must succeed first; repeat.")
@click.option("--at-front", is_flag=True, help="Run it before the tasks already pending.")
@click.option("--attempts", type=int, help="Total tries (retries after failures).")
@click.option("--timeout", "--task-timeout", "timeout", type=float, help="Seconds a try may run.")
@click.option("--ttl", type=int, help="Seconds it may wait to start before it expires.")
@click.option("--result-ttl", type=int, help="Seconds its hash is kept after success (-1: ever).")
@click.option("--failure-ttl", type=int, help="Seconds its hash is kept after it fails, is "
              "cancelled or expires (-1: forever).")  # fmt: skip
@click.option("--on-success", help="A function to queue when it succeeds.")
@click.option("--on-failure", help="A function to queue when it ends otherwise.")
@click.option("--description", help="Free text, shown by inspect.")
@click.option("--shards", type=click.IntRange(1, MAX_SHARDS), default=None, envvar="DOTHIS_SHARDS",
              help="The queue is one logical queue over N shards: the task goes to the shard of "
              "its id (SPEC.md 11.2) [env DOTHIS_SHARDS].")  # fmt: skip
@click.option("--wait", is_flag=True, help="Wait for the outcome and print the value as JSON.")
@click.option("--timeout-wait", type=float, default=30.0, show_default=True,
              help="Seconds --wait waits (exit status 2 when it runs out).")  # fmt: skip
def enqueue(
    url: str | None,
    queue: str,
    function: str,
    pairs: dict[str, Any],
    args_json: dict[str, Any] | None,
    more_pairs: dict[str, Any],
    wait: bool,
    timeout_wait: float,
    depends_on: tuple[str, ...],
    shards: int | None,
    **options: Any,
) -> None:
    """Queue FUNCTION with arguments NAME=VALUE... and print the task id (with --wait, then its
    value as JSON; a task that fails is an error)."""
    args = {**(args_json or {}), **more_pairs, **pairs}
    options = {name: value for name, value in options.items()
               if value is not None and value is not False}  # fmt: skip
    if depends_on:
        options["depends_on"] = list(depends_on)
    with Queue(queue, url, shards=shards) as target:
        task = target.enqueue_call(function, args, **options)
        click.echo(task.id)
        if wait:
            try:
                click.echo(codec.encode(task.wait(timeout_wait)))
            except WaitTimeout as error:
                raise StillRunning(str(error)) from error
