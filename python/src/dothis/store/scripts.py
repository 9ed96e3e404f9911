"""The protocol's Lua scripts (lua/<name>.lua at the repository root), registered on a client.

redis-py's Script objects run EVALSHA and load the script on NOSCRIPT. Nothing outside the store
layer touches them: ``ops`` names a script, the executors run it.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio

from dothis.store.resources import lua_source

NAMES = (
    "enqueue", "start", "finish", "retry", "recover", "renew", "reject", "promote", "requeue",
    "release", "cancel", "fire", "progress", "delete",
)  # fmt: skip


def register(client: redis.Redis | redis.asyncio.Redis) -> dict[str, Any]:
    """One registered script per protocol operation, by name, for a sync or an asyncio client."""
    return {name: client.register_script(lua_source(name)) for name in NAMES}
