"""At start: fail with a clear error when Redis cannot be used; warn about unsafe settings."""

from __future__ import annotations

import logging
from typing import Any, cast

import redis

from dothis.errors import ReadOnlyRedis
from dothis.store.connection import (
    REDIS_OR_REPLY_ERRORS,
    AsyncClient,
    explain,
    is_setup_error,
    redact,
)

log = logging.getLogger("dothis.worker")


async def check_redis(client: AsyncClient, url: str) -> None:
    try:
        await client.ping()
    except REDIS_OR_REPLY_ERRORS as error:
        if isinstance(error, redis.ResponseError) and not is_setup_error(error):
            raise
        raise explain(url, error) from error
    role = await cast(Any, client).execute_command("ROLE")
    if role and role[0] in (b"slave", b"replica"):
        raise ReadOnlyRedis(
            f"Redis at {redact(url)} is a read-only replica: a worker writes, so point --url (or "
            "DOTHIS_REDIS_URL) at the primary"
        )
    try:
        config: dict[Any, Any] = await client.config_get("maxmemory-policy")
        persistence: dict[Any, Any] = await client.config_get("appendonly")
    except redis.ResponseError:
        return  # CONFIG is disabled on some hosted Redis; nothing to check then
    if persistence.get(b"appendonly") == b"no":
        log.info("Redis has appendonly no: a Redis crash can lose acknowledged tasks (SPEC.md "
                 "4.4); use appendonly yes with appendfsync everysec or always")  # fmt: skip
    policy = config.get(b"maxmemory-policy")
    if policy not in (None, b"noeviction"):
        log.warning("Redis maxmemory-policy is %s: it can evict task hashes and worker keys and "
                    "lose tasks; set maxmemory-policy noeviction", policy.decode())  # fmt: skip
