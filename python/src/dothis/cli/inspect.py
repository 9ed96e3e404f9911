"""``dothis inspect ID``: everything a task hash says, read for a person (or as JSON)."""

from __future__ import annotations

from typing import Any

import click
from rich.panel import Panel
from rich.table import Table

from dothis.cli.common import (
    console,
    emit_json,
    json_option,
    queue_option,
    url_option,
)
from dothis.cli.config import config_option
from dothis.errors import TaskNotFound
from dothis.producer.queue import Queue
from dothis.wire.display import age_seconds, decode_json, duration, pretty
from dothis.wire.protocol import Field, State
from dothis.wire.records import TaskInfo

# Fields whose value is JSON text, shown decoded; `progress` is written by a running task.
JSON_FIELDS = (Field.ARGS, Field.RESULT_VALUE, Field.DEPENDS_ON, "progress")


def _int(text: str | None, default: int) -> int | str:
    try:
        return int(text) if text is not None else default
    except ValueError:
        return text or default


def timings(info: TaskInfo) -> tuple[float | None, float | None]:
    """(seconds it waited to start, seconds it ran): up to now while it still waits or runs."""
    pending, executing = info.get(Field.PENDING_CREATED), info.get(Field.EXECUTING_CREATED)
    finished = info.get(Field.FINISHED_CREATED)
    waits = info.state in (None, State.PENDING, State.SCHEDULED, State.WAITING)
    waited = age_seconds(pending, executing) if executing or not waits else age_seconds(pending)
    if info.state == State.EXECUTING:
        return waited, age_seconds(executing)
    return waited, age_seconds(executing, finished) if executing and finished else None


def details(info: TaskInfo, queue: str) -> dict[str, Any]:
    """The task as JSON: every field as written, the JSON ones decoded, the timings."""
    waited, ran = timings(info)
    code = info.get(Field.ERROR_CODE)
    error = None if code is None else {
        "code": code, "reason": info.get(Field.ERROR_REASON),
        "exception": info.get(Field.ERROR_EXCEPTION),
    }  # fmt: skip
    return {
        "id": info.id, "queue": queue, "function": info.function, "state": info.state,
        "outcome": info.outcome, "fields": info.fields,
        "args": decode_json(info.get(Field.ARGS)),
        "value": decode_json(info.get(Field.RESULT_VALUE)),
        "progress": decode_json(info.fields.get("progress")), "error": error,
        "waited_seconds": waited, "ran_seconds": ran,
        "retries": _int(info.get(Field.RETRIES), 0), "attempts": _int(info.get(Field.ATTEMPTS), 1),
        "claims": _int(info.get(Field.CLAIMS), 0),
    }  # fmt: skip


def _ordered(fields: dict[str, str]) -> list[tuple[str, str]]:
    """The fields in SPEC.md's order (3.1), then any others by name."""
    known = [name.value for name in Field]
    return sorted(fields.items(), key=lambda item: (
        known.index(item[0]) if item[0] in known else len(known), item[0]))  # fmt: skip


def show(data: dict[str, Any]) -> None:
    out = console()
    outcome = f", {data['outcome']}" if data["outcome"] else ""
    out.print(f"task {data['id']} on queue {data['queue']}: {data['function']} "
              f"({data['state'] or 'pending'}{outcome})")  # fmt: skip
    out.print(f"waited {duration(data['waited_seconds'])}, ran {duration(data['ran_seconds'])}; "
              f"attempts {data['attempts']}, retries {data['retries']}, claims "
              f"{data['claims']}")  # fmt: skip
    table = Table("field", "value")
    for name, raw in _ordered(data["fields"]):
        if name != Field.ERROR_EXCEPTION:
            table.add_row(name, pretty(decode_json(raw)) if name in JSON_FIELDS else raw)
    out.print(table)
    if data["progress"] is not None:
        out.print(Panel(pretty(data["progress"]), title="progress", expand=False))
    error = data["error"]
    if error is not None:
        trace = f"\n\n{error['exception'].rstrip()}" if error["exception"] else ""
        out.print(Panel(f"{error['code']}: {error['reason']}{trace}", title="error",
                        border_style="red"))  # fmt: skip


@click.command()
@config_option(None)
@url_option
@queue_option
@json_option
@click.argument("task_id")
def inspect(url: str | None, queue: str, as_json: bool, task_id: str) -> None:
    """Show every field of task TASK_ID, its error and traceback, and how long it waited and ran."""
    with Queue(queue, url) as target:
        info = target.read_task(task_id)
    if info is None:
        raise TaskNotFound(task_id, queue)
    data = details(info, queue)
    if as_json:
        emit_json(data)
    else:
        show(data)
