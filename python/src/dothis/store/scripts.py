"""The protocol's Lua scripts (lua/<name>.lua at the repository root), registered on a client.

redis-py's Script objects run EVALSHA and load the script on NOSCRIPT. Nothing outside the store
layer touches them: ``ops`` names a script, the executors run it.
"""

from __future__ import annotations

import functools
from typing import Any

import redis
import redis.asyncio

from dothis.store.resources import lua_source

NAMES = (
    "enqueue", "start", "finish", "retry", "recover", "renew", "reject", "promote", "requeue",
    "release", "cancel", "fire", "progress", "delete", "take",
)  # fmt: skip


@functools.cache
def source(name: str) -> str:
    """The text of one script, read from its file once per process."""
    if name not in NAMES:
        raise KeyError(name)
    return lua_source(name)


def register(client: redis.Redis | redis.asyncio.Redis) -> dict[str, Any]:
    """One registered script per protocol operation, by name, for a sync or an asyncio client."""
    return {name: client.register_script(source(name)) for name in NAMES}


class Scripts(dict[str, Any]):
    """The scripts of a synchronous client, each registered (its file read and hashed) at its
    first use: a producer that only enqueues reads one file, not all of them. A script is sent
    the same way either way: EVALSHA, and SCRIPT LOAD then EVALSHA again on NOSCRIPT (a Redis
    that restarted or whose script cache was flushed gets it back)."""

    def __init__(self, client: redis.Redis) -> None:
        super().__init__()
        self.client = client

    def __missing__(self, name: str) -> Any:
        script = self[name] = self.client.register_script(source(name))
        return script
