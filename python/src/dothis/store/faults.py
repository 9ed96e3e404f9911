"""Redis refusals that are faults of the server, not of a task (SPEC.md 4.4): read in one line.

A worker meeting one of these retries with backoff, as for a lost connection; it never fails a
task for it.
"""

from __future__ import annotations

import logging
import threading
import time

from redis import exceptions

# redis-py turns some replies into classes of their own and drops the code from the message.
_BY_CLASS: tuple[tuple[type[Exception], str], ...] = (
    (exceptions.ReadOnlyError, "READONLY"),
    (exceptions.OutOfMemoryError, "OOM"),
    (exceptions.BusyLoadingError, "LOADING"),
    (exceptions.NoPermissionError, "NOPERM"),
)

FAULTS = (
    ("READONLY", "Redis is a read-only replica (a failover, or the URL names a replica): point the "
                 "URL at the primary"),
    ("OOM", "Redis is out of memory (maxmemory reached, policy noeviction): free memory or raise "
            "maxmemory"),
    ("LOADING", "Redis is loading its data set after a restart"),
    ("MASTERDOWN", "the replica lost its primary"),
    ("NOREPLICAS", "Redis refuses writes: not enough replicas (min-replicas-to-write)"),
    ("MISCONF", "Redis cannot persist to disk (stop-writes-on-bgsave-error)"),
    ("UNBLOCKED", "Redis stopped being the primary while the worker waited on it (a failover): "
                  "point the URL at the new primary"),
    ("BUSY", "Redis is busy running a script"),
    ("WRONGTYPE", "a key of the queue holds the wrong type (SPEC.md 2.1): it was written by hand"),
    ("NOPERM", "the Redis user lacks a permission the protocol needs: see SPEC.md section 15, "
               "ACL"),
)  # fmt: skip


# A fault worth one line per episode, not one per retry: the same kind again within this many
# seconds is logged at DEBUG.
QUIET_SECONDS = 60.0
# Faults that are one episode under two names: a failover unblocks BLMOVE, then refuses writes.
_SAME_EPISODE = {"UNBLOCKED": "READONLY"}


def _text(error: BaseException) -> str:
    text = str(error)
    for kind, code in _BY_CLASS:
        if isinstance(error, kind) and not text.startswith(code):
            text = f"{code} {text}"
    return text


def _code(text: str) -> str | None:
    for prefix, _ in FAULTS:
        if text.startswith(prefix) or text.startswith(f"Error {prefix}") or f" {prefix} " in text:
            return prefix
    return None


def describe(error: BaseException) -> str:
    """What a Redis error means and what to do, in one line."""
    text = _text(error)
    code = _code(text)
    if code is not None:
        return f"{dict(FAULTS)[code]} ({text[:120]})"
    return text[:200] or type(error).__name__


class Episodes:
    """Which faults were reported lately, across every loop and thread of a process: a READONLY
    met by the claim loop, twenty outcome writes and every reaper pass is one line, not twenty."""

    def __init__(self, quiet_seconds: float = QUIET_SECONDS) -> None:
        self.quiet = quiet_seconds
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def level(self, error: BaseException) -> int:
        """WARNING for the first report of this kind of fault in ``quiet`` seconds, else DEBUG."""
        code = _code(_text(error)) or type(error).__name__
        kind = _SAME_EPISODE.get(code, code)
        now = time.monotonic()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self.quiet:
                return logging.DEBUG
            self._last[kind] = now
        return logging.WARNING


EPISODES = Episodes()


def report(log: logging.Logger, error: BaseException, message: str, *args: object) -> None:
    """Log "<message % args>: <what the error means>; retrying", once per fault episode (the
    caller retries)."""
    log.log(EPISODES.level(error), f"{message}: %s; retrying", *args, describe(error))
