"""Point application code at a test Redis, and switch eager mode, each for a block and restored.

Code that queues through ``@task`` functions (``send_mail.delay(...)``) or ``Queue(name)`` without
a URL reads ``$DOTHIS_REDIS_URL``; ``redis_url_env`` sets it. ``always_eager`` is
``dothis.set_always_eager`` with the previous setting put back.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from dothis.producer import queue as producer_queue
from dothis.store.connection import connect, translate_errors

URL_VARIABLE = "DOTHIS_REDIS_URL"


@contextmanager
def redis_url_env(url: str) -> Iterator[str]:
    """``$DOTHIS_REDIS_URL`` is ``url`` inside the block."""
    before = os.environ.get(URL_VARIABLE)
    os.environ[URL_VARIABLE] = url
    try:
        yield url
    finally:
        if before is None:
            os.environ.pop(URL_VARIABLE, None)
        else:
            os.environ[URL_VARIABLE] = before


def is_always_eager() -> bool:
    return producer_queue._eager["always"]


@contextmanager
def always_eager(enabled: bool = True) -> Iterator[None]:
    """``set_always_eager(enabled)`` inside the block, the previous setting after it."""
    before = is_always_eager()
    producer_queue.set_always_eager(enabled)
    try:
        yield
    finally:
        producer_queue.set_always_eager(before)


def flush(url: str) -> None:
    """Empty the database of ``url`` (the kit's own server only: never a user's)."""
    client = connect(url)
    try:
        with translate_errors(url):
            client.flushdb()
    finally:
        client.close()
