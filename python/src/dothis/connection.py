"""Redis connections with the settings the protocol needs, and errors that name the fix.

redis-py's defaults (a 5 s socket timeout, silent retries) make a blocking call fail only after a
long silent wait; blocking connections here have no read timeout shorter than the block and no
automatic retry. Every connection speaks RESP2 and returns bytes: task hashes are decoded field by
field, so one non-UTF-8 value cannot make a whole read fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.retry import Retry

from dothis.errors import ConnectionFailed

DEFAULT_URL = "redis://127.0.0.1:6379/0"
COMMAND_TIMEOUT = 10.0
CONNECT_TIMEOUT = 5.0


def resolve_url(url: str | None) -> str:
    """The URL to use: the argument, else $DOTHIS_REDIS_URL, else the local default."""
    return url or os.environ.get("DOTHIS_REDIS_URL") or DEFAULT_URL


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def unreachable(url: str, error: BaseException) -> ConnectionFailed:
    return ConnectionFailed(
        f"cannot reach Redis at {redact(url)} ({error}): is redis-server running? "
        "set DOTHIS_REDIS_URL or pass --url"
    )


def _options(blocking_seconds: float | None) -> dict[str, Any]:
    # A blocking connection waits up to its block time plus a margin; others fail after 10 s.
    timeout = COMMAND_TIMEOUT if blocking_seconds is None else blocking_seconds + COMMAND_TIMEOUT
    return {
        "protocol": 2,
        "decode_responses": False,
        "socket_timeout": timeout,
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "health_check_interval": 0,
    }


def connect(url: str, *, blocking_seconds: float | None = None) -> redis.Redis:
    """A synchronous client; no automatic retries (callers decide what a failure means)."""
    try:
        return redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), **_options(blocking_seconds))
    except ValueError as error:
        raise ConnectionFailed(f"invalid Redis URL {redact(url)!r}: {error}") from error


def connect_async(url: str, *, blocking_seconds: float | None = None) -> aioredis.Redis:
    """An asyncio client with the same settings as ``connect``."""
    from redis.asyncio.retry import Retry as AsyncRetry

    try:
        return aioredis.Redis.from_url(
            url, retry=AsyncRetry(NoBackoff(), 0), **_options(blocking_seconds)
        )
    except ValueError as error:
        raise ConnectionFailed(f"invalid Redis URL {redact(url)!r}: {error}") from error


@contextmanager
def translate_errors(url: str) -> Iterator[None]:
    """Turn redis-py's connection errors into ConnectionFailed naming the URL and the fix."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError, OSError) as error:
        raise unreachable(url, error) from error
