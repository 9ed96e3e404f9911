"""Read-only views of a queue for the CLI and for monitoring."""

from __future__ import annotations

import re
from typing import Any, cast

from dothis.connection import translate_errors
from dothis.producer import Queue


def glob_escape(text: str) -> str:
    """``text`` as a literal inside a Redis glob pattern."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def queue_info(queue: Queue) -> dict[str, Any]:
    keys = queue.keys
    with translate_errors(queue.url):
        client = queue.redis
        pipe = client.pipeline(transaction=False)
        pipe.llen(keys.pending)
        pipe.llen(keys.executing)
        pipe.llen(keys.rejected)
        pipe.zcard(keys.scheduled)
        pipe.zcard(keys.failed)
        pending, executing, rejected, scheduled, failed = pipe.execute()
        workers = []
        for key in client.scan_iter(match=glob_escape(keys.worker("")) + "*", count=500):
            fields = cast(dict[bytes, bytes], client.hgetall(key))
            workers.append({k.decode(): v.decode("utf-8", "replace") for k, v in fields.items()})
    return {
        "pending": pending,
        "executing": executing,
        "scheduled": scheduled,
        "failed": failed,
        "rejected": rejected,
        "workers": workers,
    }
