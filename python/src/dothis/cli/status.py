"""``dothis info`` and ``dothis check``: the state of queues and their workers, for people and
for health probes."""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import click
import redis

from dothis.cli.common import (
    console,
    emit_json,
    json_option,
    open_client,
    queues_option,
    url_option,
)
from dothis.cli.config import config_option
from dothis.errors import InvalidArguments
from dothis.producer.inspection import known_queues, pending_functions, queue_info
from dothis.producer.queue import Queue
from dothis.store import faults
from dothis.store.connection import translate_errors
from dothis.store.shards import declared
from dothis.wire.display import age_seconds, decode_json, duration
from dothis.wire.shards import shard_name

if TYPE_CHECKING:
    from rich.console import Group

COUNTS = ("pending", "scheduled", "waiting", "executing", "failed", "succeeded", "rejected")
# How many of the next pending tasks are checked for a function no live worker runs.
NEXT_PENDING = 100


def _worker(fields: dict[str, str]) -> dict[str, Any]:
    """A worker key's fields, its JSON fields decoded and its heartbeat's age added."""
    running = decode_json(fields.get("running"))
    return {
        **fields,
        "queues": decode_json(fields.get("queues")),
        "functions": decode_json(fields.get("functions")),
        "running": running if isinstance(running, list) else [],
        "heartbeat_age_seconds": age_seconds(fields.get("heartbeat")),
    }


def warnings(
    queue: str, pending: int, workers: list[dict[str, Any]], upcoming: list[str]
) -> list[str]:
    """Why the pending tasks of ``queue`` may never run: no live worker, or functions that no
    live worker lists (among ``upcoming``, the functions of the next pending tasks)."""
    if pending and not workers:
        return [f"no live worker on queue {queue}: {pending} pending task(s) wait"]
    served = {name for worker in workers if isinstance(worker["functions"], list)
              for name in worker["functions"]}  # fmt: skip
    missing = Counter(name for name in upcoming if name not in served)
    return [f"no live worker runs function {name} on queue {queue} ({count} of the next "
            f"{len(upcoming)} pending)" for name, count in sorted(missing.items())]  # fmt: skip


def report(name: str, url: str | None, shards: int | None = None) -> dict[str, Any]:
    """One queue: its counts, the age of its oldest pending task, its live workers, warnings;
    a sharded queue's (SPEC.md 11.2) summed over its shards."""
    with Queue(name, url, shards=shards) as queue:
        parts = getattr(queue, "parts", None) or [queue]
        summaries = [queue_info(part) for part in parts]
        summary = _summed(summaries)
        upcoming = [function for part, one in zip(parts, summaries, strict=True) if one["pending"]
                    for function in pending_functions(part, NEXT_PENDING)]  # fmt: skip
    if shards is not None:
        summary["shards"] = shards
    workers = [_worker(fields) for fields in summary["workers"]]
    return {"queue": name, **summary, "workers": workers,
            "warnings": warnings(name, summary["pending"], workers, upcoming)}  # fmt: skip


def _summed(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """The counts of several shards added up, the oldest pending age the greatest, and each live
    worker once."""
    if len(summaries) == 1:
        return summaries[0]
    ages = [one["oldest_pending_seconds"] for one in summaries
            if one["oldest_pending_seconds"] is not None]  # fmt: skip
    workers = {worker.get("id"): worker for one in summaries for worker in one["workers"]}
    return {**{name: sum(one[name] for one in summaries) for name in COUNTS},
            "oldest_pending_seconds": max(ages, default=None),
            "workers": list(workers.values())}  # fmt: skip


def gather(url: str | None, queues: tuple[str, ...]) -> list[dict[str, Any]]:
    """The reports of ``queues``, or of every queue in the registry of queues (where a queue
    that cannot be read, e.g. a key of the wrong type written by hand, is reported as such and
    does not hide the others)."""
    with open_client(url) as (client, resolved), translate_errors(resolved):
        sharded = declared(client)
        names = list(dict.fromkeys(queues)) or known_queues(client)
    if queues:
        return [report(name, url, sharded.get(name)) for name in names]
    # A sharded queue is one row: its shards are not listed on their own.
    parts = {shard_name(name, index) for name, count in sharded.items() for index in range(count)}
    names = sorted({*(name for name in names if name not in parts), *sharded})
    reports = []
    for name in names:
        try:
            reports.append(report(name, url, sharded.get(name)))
        except (InvalidArguments, redis.ResponseError) as error:
            reports.append({"queue": name, "error": faults.describe(error)})
    return reports


def _running(worker: dict[str, Any]) -> str:
    lines = []
    for item in worker["running"]:
        if isinstance(item, dict):
            since = duration(age_seconds(str(item.get("since") or "")))
            lines.append(f"{item.get('function')} {item.get('id')} ({since})")
    return "\n".join(lines) or "-"


def _listed(value: Any) -> str:
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value or "-")


def _tasks(item: dict[str, Any]) -> str:
    """The non-zero counts of a queue, in words: ``3 pending, 1 executing``."""
    return ", ".join(f"{item[name]} {name}" for name in COUNTS if item[name]) or "empty"


def render(reports: list[dict[str, Any]]) -> Group:
    """The reports as two tables (queues, workers) and the warnings."""
    # rich only here: ``dothis check`` (a health probe, run often) never imports it
    from rich.console import Group
    from rich.table import Column, Table
    from rich.text import Text

    if not reports:
        return Group(Text("no queues known yet (the registry dothis.queues is empty); "
                          "name one with --queue"))  # fmt: skip
    queues = Table("queue", "tasks", "oldest pending", "workers", title="queues")
    workers = Table(Column("worker", overflow="fold"), "queue", "host:pid", "language",
                    "functions", "heartbeat", Column("running now", overflow="fold"),
                    title="workers")  # fmt: skip
    for item in reports:
        if "error" in item:
            queues.add_row(item["queue"], f"cannot be read: {item['error']}", "-", "-")
            continue
        label = f"{item['queue']} ({item['shards']} shards)" if "shards" in item else item["queue"]
        queues.add_row(label, _tasks(item), duration(item["oldest_pending_seconds"]),
                       str(len(item["workers"])))  # fmt: skip
        for worker in item["workers"]:
            workers.add_row(worker.get("id", "?"), item["queue"],
                            f"{worker.get('host', '?')}:{worker.get('pid', '?')}",
                            worker.get("language", "?"), _listed(worker["functions"]),
                            f"{duration(worker['heartbeat_age_seconds'])} ago",
                            _running(worker))  # fmt: skip
    shown = workers if workers.row_count else Text("no live workers")
    notes = [Text(f"warning: {line}", style="yellow") for item in reports
             for line in item.get("warnings", ())]  # fmt: skip
    return Group(queues, shown, *notes)


@click.command()
@config_option(None)
@url_option
@queues_option("A queue to show; repeat for several (default: every known queue)")
@json_option
@click.option("--interval", type=click.FloatRange(min=0.1), default=None,
              help="Refresh every N seconds until Ctrl-C.")  # fmt: skip
def info(url: str | None, queues: tuple[str, ...], as_json: bool, interval: float | None) -> None:
    """Show queues: tasks by state, the oldest pending task's age, live workers and what they
    run now, and warnings about tasks no live worker will run."""
    if interval is None:
        reports = gather(url, queues)
        if as_json:
            emit_json({"queues": reports})
        else:
            console().print(render(reports))
        return
    from rich.live import Live

    try:
        if as_json:  # one JSON document per line, per refresh
            while True:
                emit_json({"queues": gather(url, queues)}, compact=True)
                time.sleep(interval)
        with Live(render(gather(url, queues)), console=console(), auto_refresh=False) as live:
            while True:
                time.sleep(interval)
                live.update(render(gather(url, queues)), refresh=True)
    except KeyboardInterrupt:
        return


def verdict(item: dict[str, Any], max_age: float) -> dict[str, Any]:
    """A queue's health: the problems that make ``check`` fail."""
    if "error" in item:
        return {"queue": item["queue"], "ok": False, "problems": [f"cannot be read: "
                f"{item['error']}"], "pending": None, "workers": 0,
                "oldest_pending_seconds": None, "warnings": []}  # fmt: skip
    problems = []
    if item["pending"] and not item["workers"]:
        problems.append(f"{item['pending']} pending task(s) and no live worker")
    age = item["oldest_pending_seconds"]
    if age is not None and age > max_age:
        problems.append(f"the oldest pending task has waited {duration(age)} "
                        f"(more than --max-age {max_age:g}s)")  # fmt: skip
    return {"queue": item["queue"], "ok": not problems, "problems": problems,
            "pending": item["pending"], "workers": len(item["workers"]),
            "oldest_pending_seconds": age, "warnings": item["warnings"]}  # fmt: skip


@click.command()
@config_option(None)
@url_option
@queues_option("A queue to check; repeat for several (default: every known queue)")
@click.option(
    "--max-age",
    type=click.FloatRange(min=0),
    default=300.0,
    show_default=True,
    help="Fail when the oldest pending task has waited longer (seconds).",
)
@json_option
@click.pass_context
def check(ctx: click.Context, url: str | None, queues: tuple[str, ...], max_age: float,
          as_json: bool) -> None:  # fmt: skip
    """Exit 2 when a queue has pending tasks but no live worker, or its oldest pending task is
    older than --max-age; exit 0 otherwise. For health probes."""
    results = [verdict(item, max_age) for item in gather(url, queues)]
    healthy = all(item["ok"] for item in results)
    if as_json:
        emit_json({"ok": healthy, "max_age": max_age, "queues": results})
    for item in [] if as_json else results:
        state = f"{item['pending']} pending, {item['workers']} live worker(s)"
        click.echo(
            f"{'ok' if item['ok'] else 'FAIL'}  {item['queue']}: "
            + ("; ".join(item["problems"]) or state)
        )
    if not results and not as_json:
        click.echo("ok: no queues known yet")
    if not healthy:
        ctx.exit(2)
