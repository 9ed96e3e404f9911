"""The commands that list and change tasks: ``failed``, ``requeue``, ``cancel``, ``delete``,
``empty`` and ``purge``. On a sharded queue (SPEC.md 11.2: ``--shards N``, or the count the queue
is declared with in ``dothis.shards``) each acts on every shard, an id in the shard of its id."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click
from rich.table import Column, Table

from dothis.cli.common import (
    console,
    emit_json,
    json_option,
    open_client,
    queue_option,
    url_option,
)
from dothis.cli.config import config_option
from dothis.errors import TaskNotFound
from dothis.producer.inspection import failed_ids, hash_fields, queue_info
from dothis.producer.queue import Queue
from dothis.producer.sharded import ShardedQueue
from dothis.store.connection import translate_errors
from dothis.store.shards import declared_count
from dothis.wire.protocol import Field
from dothis.wire.shards import MAX_SHARDS, mismatch

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
shards_option = click.option(
    "--shards", type=click.IntRange(1, MAX_SHARDS), default=None, envvar="DOTHIS_SHARDS",
    help="The queue is one logical queue over N shards (SPEC.md 11.2): act on every shard. "
    "Default: the count the queue is declared with in dothis.shards, if any "
    "[env DOTHIS_SHARDS].")  # fmt: skip


@contextmanager
def opened(name: str, url: str | None, shards: int | None) -> Iterator[Queue]:
    """The queue ``name``: sharded over ``shards``, or over the count it is declared with
    (another count than the declared one is refused: ShardMismatch); a plain queue otherwise."""
    with open_client(url) as (client, resolved), translate_errors(resolved):
        declared = declared_count(client, name)
    if shards is not None and declared is not None and shards != declared:
        raise mismatch(name, declared, shards)
    with Queue(name, url, shards=shards or declared) as target:
        yield target


def parts(queue: Queue) -> list[Queue]:
    """The ordinary queues a queue is made of: its shards, or itself."""
    return list(queue.parts) if isinstance(queue, ShardedQueue) else [queue]


def label(queue: Queue) -> str:
    if isinstance(queue, ShardedQueue):
        return f"{queue.name!r} ({queue.sharding.count} shards)"
    return repr(queue.name)


def requeue_failed(queue: Queue, function: str | None = None) -> int:
    """Requeue every failed task (of ``function``), shard by shard; how many were not."""
    return sum(requeue_each(part, failed_ids(part, function)) for part in parts(queue))


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
    tasks = queue.failed(0, count)
    found: dict[tuple[str, str], list[str | None]] = {}
    with translate_errors(queue.url):
        for part in parts(queue):
            ids = [task.id for task in tasks if task.queue.name == part.name]
            rows = hash_fields(part.redis, part.keys, ids, FAILED_FIELDS)
            pairs = zip(ids, rows, strict=True)
            found.update(((part.name, task_id), row) for task_id, row in pairs)
    names = ("function", "outcome", "finished", "error_code", "error_reason")
    return [{"id": task.id, **dict(zip(names, found[task.queue.name, task.id], strict=True))}
            for task in tasks]  # fmt: skip


@click.command()
@config_option(None)
@url_option
@queue_option
@click.option("--requeue", "requeue_ids", multiple=True, help="Requeue this failed task id.")
@click.option("--requeue-all", is_flag=True, help="Requeue every failed task.")
@click.option("--count", default=20, show_default=True, help="How many to list.")
@shards_option
@json_option
def failed(url: str | None, queue: str, requeue_ids: tuple[str, ...], requeue_all: bool,
           count: int, shards: int | None, as_json: bool) -> None:  # fmt: skip
    """List failed tasks (newest first: failed, cancelled or expired), or requeue them."""
    with opened(queue, url, shards) as target:
        if requeue_all or requeue_ids:
            if requeue_all:
                requeue_failed(target)
            else:
                requeue_each(target, list(requeue_ids))
            return
        rows = failed_rows(target, count)
        title = f"failed in {label(target)}"
    if as_json:
        emit_json(rows)
        return
    table = Table(Column("id", overflow="fold"), Column("finished", overflow="fold"), "function",
                  "outcome", "error", title=title)  # fmt: skip
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
@shards_option
@click.pass_context
def requeue(ctx: click.Context, url: str | None, queue: str, task_ids: tuple[str, ...],
            every: bool, function: str | None, shards: int | None) -> None:  # fmt: skip
    """Give failed tasks a fresh start: TASK_IDS, --all, or those of --function NAME.

    The exit status is 1 when a TASK_ID given was not requeued."""
    if not (task_ids or every or function):
        raise click.UsageError("name task ids, or give --all or --function NAME")
    with opened(queue, url, shards) as target:
        refused = requeue_each(target, list(task_ids))
        if every or function:
            requeue_failed(target, function)
    if refused:
        ctx.exit(1)


def _each(task_ids: tuple[str, ...], act: Callable[[str], str], queue: str) -> list[str]:
    """``act`` on every id, one line each (``not found in queue ...`` for a missing task); the
    outcomes, ``not found`` for those."""
    outcomes: list[str] = []
    for task_id in task_ids:
        try:
            outcome = act(task_id)
            click.echo(f"{task_id}  {outcome}")
        except TaskNotFound:
            outcome = "not found"
            click.echo(f"{task_id}  not found in queue {queue!r}")
        outcomes.append(outcome)
    return outcomes


@click.command()
@config_option(None)
@url_option
@queue_option
@click.argument("task_ids", nargs=-1, required=True)
@shards_option
@click.pass_context
def cancel(ctx: click.Context, url: str | None, queue: str, task_ids: tuple[str, ...],
           shards: int | None) -> None:  # fmt: skip
    """Cancel tasks: at once if they have not started, by request if they are running.

    Every id is tried; the exit status is 1 when any of them is not a task of the queue."""
    with opened(queue, url, shards) as target:
        outcomes = _each(task_ids, target.cancel, queue)
    if "not found" in outcomes:
        ctx.exit(1)


@click.command()
@config_option(None)
@url_option
@queue_option
@click.argument("task_ids", nargs=-1, required=True)
@shards_option
@click.pass_context
def delete(ctx: click.Context, url: str | None, queue: str, task_ids: tuple[str, ...],
           shards: int | None) -> None:  # fmt: skip
    """Delete tasks that are not running, with every entry of them (SPEC.md 5.17).

    A running task is left alone (cancel it first). Every id is tried; the exit status is 1 when
    any of them is running or not a task of the queue."""
    with opened(queue, url, shards) as target:
        outcomes = _each(task_ids, target.delete_task, queue)
    if any(outcome != "deleted" for outcome in outcomes):
        ctx.exit(1)


@click.command()
@config_option(None)
@url_option
@queue_option
@yes_option
@shards_option
def empty(url: str | None, queue: str, yes: bool, shards: int | None) -> None:
    """Remove every pending task of the queue (and its hash); nothing else is touched."""
    with opened(queue, url, shards) as target:
        if not yes:
            click.confirm(f"Remove the {len(target)} pending task(s) of queue {label(target)}?",
                          abort=True)  # fmt: skip
        click.echo(f"removed {target.empty()} pending task(s) from queue {label(target)}")


@click.command()
@config_option(None)
@url_option
@queue_option
@yes_option
@shards_option
def purge(url: str | None, queue: str, yes: bool, shards: int | None) -> None:
    """Delete everything of the queue: its lists, registries and task hashes. Workers serving it
    keep running and find it empty."""
    with opened(queue, url, shards) as target:
        name = label(target)
        if not yes:
            summaries = [queue_info(part) for part in parts(target)]
            counts = ", ".join(f"{sum(one[state] for one in summaries)} {state}" for state in
                               ("pending", "scheduled", "waiting", "executing", "failed",
                                "succeeded"))  # fmt: skip
            click.confirm(f"Delete queue {name} and all its tasks ({counts})?", abort=True)
        target.delete()
    click.echo(f"deleted queue {name}")
