"""The protocol's Lua scripts (lua/*.lua at the repository root), registered on a client.

redis-py's Script objects run EVALSHA and load the script on NOSCRIPT, in pipelines too.
"""

from __future__ import annotations

from typing import Any

from dothis.resources import lua_source

NAMES = (
    "enqueue", "start", "finish", "retry", "recover", "reject", "promote", "requeue", "release",
    "cancel", "fire",
)  # fmt: skip


class Scripts:
    """One registered script per protocol operation, for a sync or an asyncio client."""

    def __init__(self, client: Any) -> None:
        self.enqueue = client.register_script(lua_source("enqueue"))
        self.start = client.register_script(lua_source("start"))
        self.finish = client.register_script(lua_source("finish"))
        self.recover = client.register_script(lua_source("recover"))
        self.reject = client.register_script(lua_source("reject"))
        self.retry = client.register_script(lua_source("retry"))
        self.promote = client.register_script(lua_source("promote"))
        self.requeue = client.register_script(lua_source("requeue"))
        self.release = client.register_script(lua_source("release"))
        self.cancel = client.register_script(lua_source("cancel"))
        self.fire = client.register_script(lua_source("fire"))
