"""What a producer process that only enqueues loads: no OpenTelemetry of its own (when the
application has not loaded ``opentelemetry.trace``, no span can be active; redis-py may load parts
of OpenTelemetry itself, and does, with the SDK installed), and the task carries no trace."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import redis

pytestmark = pytest.mark.integration

ENQUEUE = """
import json, sys
from dothis import Queue

def otel():
    return sorted(m for m in sys.modules if m.startswith("opentelemetry"))

with Queue(sys.argv[2], sys.argv[1]) as queue:
    before = otel()  # what redis-py loaded
    task = queue.enqueue("echo", text="x")
    print(json.dumps({"id": task.id, "scripts": sorted(queue.store.scripts), "before": before,
                      "after": otel()}))
"""


def test_enqueue_loads_no_tracing(url: str, queue_name: str, r: redis.Redis) -> None:
    done = subprocess.run([sys.executable, "-c", ENQUEUE, url, queue_name], capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["scripts"] == ["enqueue"]
    assert seen["after"] == seen["before"]
    fields = r.hkeys(f"{queue_name}:task:{seen['id']}")
    assert b"function" in fields and b"traceparent" not in fields
