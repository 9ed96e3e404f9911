"""TaskContext crosses to a pool's child process as JSON and comes back whole."""

from __future__ import annotations

import dataclasses
import json

from dothis.engine.context import TaskContext


def test_a_task_context_survives_its_message() -> None:
    task = TaskContext("t1", "emails", "send", 2, 3, "w1", 7, {"traceparent": "00-ab-cd-01"})
    message = json.loads(json.dumps(task.to_message()))
    assert set(message) == {field.name for field in dataclasses.fields(TaskContext)}
    assert TaskContext.from_message(message) == task
