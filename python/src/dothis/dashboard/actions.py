"""The actions a dashboard offers, each through the producer's own API (Queue and Inspection: the
protocol's scripts, requeue.lua, cancel.lua and delete.lua, run by the operations layer): nothing
here writes to Redis itself."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dothis.dashboard.reader import Reader
from dothis.dashboard.tasks import check_id
from dothis.errors import InvalidArguments, TaskNotFound
from dothis.producer.inspection import failed_ids
from dothis.producer.queue import Queue


@dataclass(frozen=True)
class Done:
    """What an action did, in one sentence for a person, and the counts behind it."""

    message: str
    changed: int
    refused: int = 0


def _requeue(queue: Queue, ids: Sequence[str]) -> Done:
    outcomes = [queue.requeue_outcome(task_id) for task_id in ids]
    done = outcomes.count("requeued")
    refused = len(outcomes) - done
    note = f"; {refused} not requeued (no longer failed, or expired)" if refused else ""
    return Done(f"requeued {done} task(s) of queue {queue.name!r}{note}", done, refused)


def requeue(queue: Queue, ids: Sequence[str], function: str) -> Done:
    if not ids:
        raise InvalidArguments("select at least one failed task to requeue")
    return _requeue(queue, [check_id(task_id) for task_id in ids])


def requeue_all(queue: Queue, ids: Sequence[str], function: str) -> Done:
    return _requeue(queue, failed_ids(queue))


def requeue_function(queue: Queue, ids: Sequence[str], function: str) -> Done:
    if not function:
        raise InvalidArguments("name the function whose failed tasks to requeue")
    return _requeue(queue, failed_ids(queue, function))


def _each(ids: Sequence[str], act: Callable[[str], str], verb: str) -> list[str]:
    """``act`` on every selected id: its outcome, or ``not found``."""
    if not ids:
        raise InvalidArguments(f"select at least one task to {verb}")
    outcomes: list[str] = []
    for task_id in ids:
        try:
            outcomes.append(act(check_id(task_id)))
        except TaskNotFound:
            outcomes.append("not found")
    return outcomes


def _summary(outcomes: list[str]) -> str:
    return ", ".join(f"{outcomes.count(name)} {name}" for name in dict.fromkeys(outcomes))


def cancel(queue: Queue, ids: Sequence[str], function: str) -> Done:
    outcomes = _each(ids, queue.cancel, "cancel")
    changed = outcomes.count("cancelled") + outcomes.count("requested")
    return Done(f"cancel in queue {queue.name!r}: {_summary(outcomes)}", changed,
                len(ids) - changed)  # fmt: skip


def delete(queue: Queue, ids: Sequence[str], function: str) -> Done:
    outcomes = _each(ids, queue.delete_task, "delete")
    note = " (a running task is not deleted: cancel it first)" if "running" in outcomes else ""
    changed = outcomes.count("deleted")
    return Done(f"delete in queue {queue.name!r}: {_summary(outcomes)}{note}", changed,
                len(ids) - changed)  # fmt: skip


def empty(queue: Queue, ids: Sequence[str], function: str) -> Done:
    removed = queue.empty()
    return Done(f"removed {removed} pending task(s) from queue {queue.name!r}", removed)


def delete_queue(queue: Queue, ids: Sequence[str], function: str) -> Done:
    queue.delete()
    return Done(f"deleted queue {queue.name!r}: its lists, registries and task hashes", 1)


ACTIONS: dict[str, Callable[[Queue, Sequence[str], str], Done]] = {
    "requeue": requeue,
    "requeue-all": requeue_all,
    "requeue-function": requeue_function,
    "cancel": cancel,
    "delete": delete,
    "empty": empty,
    "delete-queue": delete_queue,
}


def run(reader: Reader, name: str, queue: str, ids: Sequence[str], function: str = "") -> Done:
    """Run the action ``name`` on ``queue``; InvalidArguments for an unknown action."""
    action = ACTIONS.get(name)
    if action is None:
        raise InvalidArguments(f"no action {name!r}: use one of {', '.join(ACTIONS)}")
    return action(reader.queue(queue), list(dict.fromkeys(ids)), function.strip())
