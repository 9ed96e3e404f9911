"""What a queue holds, for assertions: ``enqueued`` lists it, ``assert_enqueued`` finds one call.

Read with the Queue's inspection API (pending in run order, then scheduled soonest first) and the
index of tasks waiting for others (``<queue>:waiting``), each as the ``TaskInfo`` of its hash.
Nothing is claimed or changed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from dothis.engine.registry import function_name
from dothis.producer.queue import Queue
from dothis.store.connection import translate_errors
from dothis.wire import codec
from dothis.wire.protocol import Field, State
from dothis.wire.records import TaskInfo

PAGE = 500
WAITING_STATES = (State.PENDING, State.SCHEDULED, State.WAITING)


def _pages(read: Callable[[int, int], list[str]]) -> list[str]:
    ids: list[str] = []
    while True:
        page = read(len(ids), PAGE)
        ids += page
        if len(page) < PAGE:
            return ids


def _queued_ids(queue: Queue) -> list[str]:
    pending = _pages(queue.task_ids)
    scheduled = _pages(lambda start, count: [t.id for t in queue.scheduled(start, count)])
    with translate_errors(queue.url):
        raw = cast(list[bytes], queue.redis.zrange(queue.keys.waiting, 0, -1))
    waiting = [entry.decode("utf-8", "replace") for entry in raw]
    return list(dict.fromkeys([*pending, *scheduled, *waiting]))


def enqueued(queue: Queue, function: str | Callable[..., Any] | None = None) -> list[TaskInfo]:
    """The tasks of ``queue`` that have not started: pending (next to run first), scheduled
    (soonest first), then waiting for other tasks; only those of ``function`` (a name or a
    registered function) when given."""
    name = function_name(function) if function is not None else None
    found = []
    for task_id in _queued_ids(queue):
        info = queue.read_task(task_id)
        if info is None or info.state not in WAITING_STATES:
            continue  # gone since, or a stale entry of the waiting index
        if name is None or info.function == name:
            found.append(info)
    return found


def args_of(info: TaskInfo) -> dict[str, Any] | None:
    """The named arguments of a task, or None when its ``args`` field is not a JSON object."""
    try:
        args = codec.decode(info.get(Field.ARGS) or "{}")
    except ValueError:
        return None
    return args if isinstance(args, dict) else None


def describe(info: TaskInfo) -> str:
    """One line for a listing: state, id, the call, and when it is due."""
    args = args_of(info)
    shown = (", ".join(f"{key}={value!r}" for key, value in args.items()) if args is not None
             else repr(info.get(Field.ARGS)))  # fmt: skip
    due = info.get(Field.SCHEDULED_FOR)
    when = f" due {due}" if due and info.state == State.SCHEDULED else ""
    return f"{info.state:<9} {info.function}({shown}) id={info.id}{when}"


def assert_enqueued(queue: Queue, function: str | Callable[..., Any], /, **args: Any) -> TaskInfo:
    """The first task of ``queue`` not yet started that calls ``function`` with ``args`` (those
    given must be equal; others are not checked). AssertionError listing what the queue holds
    when there is none."""
    name = function_name(function)
    tasks = enqueued(queue)
    for info in tasks:
        if info.function != name:
            continue
        found = args_of(info)
        if found is not None and all(key in found and found[key] == value
                                     for key, value in args.items()):  # fmt: skip
            return info
    wanted = ", ".join(f"{key}={value!r}" for key, value in args.items())
    listing = "\n".join(f"  {describe(info)}" for info in tasks) or "  (nothing)"
    raise AssertionError(f"no task {name}({wanted}) is enqueued on {queue.name!r}; it holds:\n"
                         f"{listing}")  # fmt: skip
