"""Redis refusals that are faults of the server, not of a task (SPEC.md 4.4): read in one line.

A worker meeting one of these retries with backoff, as for a lost connection; it never fails a
task for it.
"""

from __future__ import annotations

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
    ("BUSY", "Redis is busy running a script"),
    ("WRONGTYPE", "a key of the queue holds the wrong type (SPEC.md 2.1): it was written by hand"),
    ("NOPERM", "the Redis user lacks a permission the protocol needs: see the ACL in SPEC.md"),
)  # fmt: skip


def describe(error: BaseException) -> str:
    """What a Redis error means and what to do, in one line."""
    text = str(error)
    for kind, code in _BY_CLASS:
        if isinstance(error, kind) and not text.startswith(code):
            text = f"{code} {text}"
    for prefix, meaning in FAULTS:
        if text.startswith(prefix) or text.startswith(f"Error {prefix}") or f" {prefix} " in text:
            return f"{meaning} ({text[:120]})"
    return text[:200] or type(error).__name__
