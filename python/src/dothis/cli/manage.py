"""The commands that list and change tasks: ``failed``, ``requeue``, ``cancel``, ``empty`` and
``purge``."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Column, Table

from dothis.cli.common import console, emit_json, json_option, queue_option, url_option
from dothis.cli.config import config_option
from dothis.errors import TaskNotFound
from dothis.producer.inspection import failed_ids, hash_fields, queue_info
from dothis.producer.queue import Queue
from dothis.store.connection import translate_errors
from dothis.wire.protocol import Field

REQUEUE_OUTCOMES = {
    "requeued": "requeued",
    "not-failed": "not in the failed set",
    "gone": "its hash is gone (expired): removed from the failed set",
    "not-finished": "not requeued: it is not a failed task now (its id runs or waits again, or "
    "succeeded): removed from the failed set",
}
FAILED_FIELDS = (Field.FUNCTION, Field.RESULT, Field.FINISHED_CREATED, Field.ERROR_CODE,
                 Field.ERROR_REASON)  # fmt: skip

yes_option = click.option("--yes", "-y", is_flag=True, allow_from_autoenv=False,
                          help="Do not ask for confirmation.")  # fmt: skip


def requeue_each(queue: Queue, task_ids: list[str]) -> int:
    """Requeue each id, one line per id; how many were not requeued."""
    refused = 0
    for task_id in task_ids:
        outcome = queue.requeue_outcome(task_id)
        refused += outcome != "requeued"
        click.echo(f"{task_id}  {REQUEUE_OUTCOMES.get(outcome, outcome)}")
    return refused


def failed_rows(queue: Queue, count: int) -> list[dict[str, Any]]:
    """The newest ``count`` failed tasks: id, function, outcome, finish time, error."""
    ids = [task.id for task in queue.failed(0, count)]
    with translate_errors(queue.url):
        rows = hash_fields(queue.redis, queue.keys, ids, FAILED_FIELDS)
    names = ("function", "outcome", "finished", "error_code", "error_reason")
    return [{"id": task_id, **dict(zip(names, row, strict=True))}
            for task_id, row in zip(ids, rows, strict=True)]  # fmt: skip


@click.command()
@config_option(None)
@url_option
@queue_option
@click.option("--requeue", "requeue_ids", multiple=True, help="Requeue this failed task id.")
@click.option("--requeue-all", is_flag=True, help="Requeue every failed task.")
@click.option("--count", default=20, show_default=True, help="How many to list.")
@json_option
def failed(url: str | None, queue: str, requeue_ids: tuple[str, ...], requeue_all: bool,
           count: int, as_json: bool) -> None:  # fmt: skip
    """List failed tasks (newest first: failed, cancelled or expired), or requeue them."""
    with Queue(queue, url) as target:
        if requeue_all or requeue_ids:
            requeue_each(target, failed_ids(target) if requeue_all else list(requeue_ids))
            return
        rows = failed_rows(target, count)
    if as_json:
        emit_json(rows)
        return
    table = Table(Column("id", overflow="fold"), Column("finished", overflow="fold"), "function",
                  "outcome", "error", title=f"failed in {queue}")  # fmt: skip
    for row in rows:
        error = f"{row['error_code']}: {(row['error_reason'] or '')[:100]}"
        table.add_row(row["id"], row["finished"] or "(hash expired)", row["function"] or "-",
                      row["outcome"] or "-", error if row["error_code"] else "-")  # fmt: skip
    console().print(table)


@click.command()
@config_option(None)
@url_option
@queue_option
@click.argument("task_ids", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Requeue every failed task.")
@click.option("--function", help="Requeue every failed task of this function.")
@click.pass_context
def requeue(ctx: click.Context, url: str | None, queue: str, task_ids: tuple[str, ...],
            every: bool, function: str | None) -> None:  # fmt: skip
    """Give failed tasks a fresh start: TASK_IDS, --all, or those of --function NAME.

    The exit status is 1 when a TASK_ID given was not requeued."""
    if not (task_ids or every or function):
        raise click.UsageError("name task ids, or give --all or --function NAME")
    with Queue(queue, url) as target:
        refused = requeue_each(target, list(task_ids))
        if every or function:
            requeue_each(target, failed_ids(target, function))
    if refused:
        ctx.exit(1)


@click.command()
@config_option(None)
@url_option
@queue_option
@click.argument("task_ids", nargs=-1, required=True)
@click.pass_context
def cancel(ctx: click.Context, url: str | None, queue: str, task_ids: tuple[str, ...]) -> None:
    """Cancel tasks: at once if they have not started, by request if they are running.

    Every id is tried; the exit status is 1 when any of them is not a task of the queue."""
    missing = 0
    with Queue(queue, url) as target:
        for task_id in task_ids:
            try:
                click.echo(f"{task_id}  {target.cancel(task_id)}")
            except TaskNotFound:
                missing += 1
                click.echo(f"{task_id}  not found in queue {queue!r}")
    if missing:
        ctx.exit(1)


@click.command()
@config_option(None)
@url_option
@queue_option
@click.argument("task_ids", nargs=-1, required=True)
@click.pass_context
def delete(ctx: click.Context, url: str | None, queue: str, task_ids: tuple[str, ...]) -> None:
    """Delete tasks that are not running, with every entry of them (SPEC.md 5.17).

    A running task is left alone (cancel it first). Every id is tried; the exit status is 1 when
    any of them is running or not a task of the queue."""
    refused = 0
    with Queue(queue, url) as target:
        for task_id in task_ids:
            try:
                outcome = target.delete_task(task_id)
            except TaskNotFound:
                outcome = f"not found in queue {queue!r}"
            refused += outcome != "deleted"
            click.echo(f"{task_id}  {outcome}")
    if refused:
        ctx.exit(1)


@click.command()
@config_option(None)
@url_option
@queue_option
@yes_option
def empty(url: str | None, queue: str, yes: bool) -> None:
    """Remove every pending task of the queue (and its hash); nothing else is touched."""
    with Queue(queue, url) as target:
        if not yes:
            click.confirm(f"Remove the {len(target)} pending task(s) of queue {queue!r}?",
                          abort=True)  # fmt: skip
        click.echo(f"removed {target.empty()} pending task(s) from queue {queue!r}")


@click.command()
@config_option(None)
@url_option
@queue_option
@yes_option
def purge(url: str | None, queue: str, yes: bool) -> None:
    """Delete everything of the queue: its lists, registries and task hashes. Workers serving it
    keep running and find it empty."""
    with Queue(queue, url) as target:
        if not yes:
            summary = queue_info(target)
            counts = ", ".join(f"{summary[name]} {name}" for name in
                               ("pending", "scheduled", "waiting", "executing", "failed",
                                "succeeded"))  # fmt: skip
            click.confirm(f"Delete queue {queue!r} and all its tasks ({counts})?", abort=True)
        target.delete()
    click.echo(f"deleted queue {queue!r}")
