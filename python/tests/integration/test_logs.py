"""The worker's log: one line per task event, with the traceback of a failure; JSON on request."""

from __future__ import annotations

import io
import json
import logging

import pytest
from support import wait_until

from dothis import TaskFailed
from dothis.engine.events import Kind, TaskEvent
from dothis.worker.logs import TaskLog, configure


def test_each_task_is_logged_as_it_starts_and_ends(queue, start_worker, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger="dothis.tasks")
    start_worker()
    good = queue.enqueue("add", a=1, b=2)
    bad = queue.enqueue("fail", message="no such thing", attempts=1)
    assert good.wait(timeout=10) == 3
    with pytest.raises(TaskFailed):
        bad.wait(timeout=10)

    def lines(task_id: str) -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name == "dothis.tasks" and task_id in r.getMessage()]

    wait_until(lambda: len(lines(bad.id)) == 2 and len(lines(good.id)) == 2, timeout=5)
    started, succeeded = lines(good.id)
    assert (started.event, started.function, started.try_number) == ("started", "add", 1)  # type: ignore[attr-defined]
    assert succeeded.getMessage().startswith(f"task {good.id} (add) on {queue.name}: succeeded in ")
    failed = lines(bad.id)[1]
    assert failed.levelno == logging.ERROR and failed.code == "exception"  # type: ignore[attr-defined]
    message = failed.getMessage()
    assert "failed" in message and "no such thing" in message and "Traceback" in message


def test_json_lines_carry_the_task_as_fields() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure("info", "json")
        root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
        TaskLog()(TaskEvent(Kind.SUCCEEDED, "emails", "t1", "w1", "send", 1, 3, 0.25))
    finally:
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])
    record = json.loads(stream.getvalue().splitlines()[-1])
    assert record["level"] == "INFO" and record["name"] == "dothis.tasks"
    assert (record["queue"], record["task_id"], record["function"]) == ("emails", "t1", "send")
    assert (record["event"], record["try_number"], record["attempts"]) == ("succeeded", 1, 3)
    assert record["seconds"] == 0.25
    assert record["message"] == "task t1 (send) on emails: succeeded in 0.250 s, try 1 of 3"


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="text or json"):
        configure("info", "yaml")
