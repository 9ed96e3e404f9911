"""Redis connections with the settings the protocol needs, and errors that name the fix.

redis-py's defaults (a 5 s socket timeout, silent retries) make a blocking call fail only after a
long silent wait; blocking connections here have no read timeout shorter than the block and no
automatic retry. Every connection speaks RESP2 and returns bytes: task hashes are decoded field by
field, so one non-UTF-8 value cannot make a whole read fail.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException
from redis.retry import Retry

from dothis.errors import AuthenticationFailed, ConnectionFailed, DothisError, InvalidUrl
from dothis.store import clients, topology
from dothis.store.acl import explain_noperm

DEFAULT_URL = "redis://127.0.0.1:6379/0"
COMMAND_TIMEOUT = 10.0
CONNECT_TIMEOUT = 5.0

# What a lost or unreachable Redis raises: every loop that retries catches exactly these.
REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)
# ... and a reply refusing a command (wrong type, NOAUTH, no such database).
REDIS_OR_REPLY_ERRORS = (*REDIS_ERRORS, redis.ResponseError)

SyncClient = redis.Redis
AsyncClient = aioredis.Redis


def resolve_url(url: str | None) -> str:
    """The URL to use: the argument, else $DOTHIS_REDIS_URL, else the local default."""
    return url or os.environ.get("DOTHIS_REDIS_URL") or DEFAULT_URL


_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_QUERY_PASSWORD = re.compile(r"([?&;]password=)[^&;#]*", re.IGNORECASE)
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def redact(url: str) -> str:
    """``url`` with its password masked as ``***``: the one function every log line, exception
    message and CLI output that shows a Redis URL goes through.

    It never raises, also for a URL that does not parse: everything between ``//`` and the last
    ``@`` is the user information, whose user name is kept and the rest masked (a user information
    without ``:`` is masked whole: some write the password there); a ``password=`` query parameter
    (redis-py reads one) is masked too.
    """
    text = str(url)
    at = text.rfind("@")
    if at != -1:
        slashes = text.find("//")
        scheme = _SCHEME.match(text)
        start = slashes + 2 if 0 <= slashes < at else (scheme.end() if scheme else 0)
        user, colon, _ = text[start:at].partition(":")
        text = f"{text[:start]}{user + ':***' if colon else '***'}{text[at:]}"
    return _QUERY_PASSWORD.sub(r"\1***", text)


def _scrub(text: str, url: str) -> str:
    """An error's text fit to show next to ``url``: when the URL carries a secret, the password
    and every quoted fragment (redis-py quotes the piece of the URL it could not parse, which may
    be a piece of the password) are masked."""
    if redact(url) == url:
        return text
    password = _password(url)
    if password:
        text = text.replace(password, "***")
    return _QUOTED.sub("'***'", text)


def _password(url: str) -> str | None:
    """The password of ``url`` as written (None when there is none or it does not parse)."""
    try:
        return urlsplit(url).password
    except ValueError:
        return None


_AUTH_MARKS = ("NOAUTH", "WRONGPASS", "invalid username-password", "unauthenticated",
               "Authentication required", "invalid password")  # fmt: skip


def explain(url: str, error: BaseException) -> DothisError:
    """The DothisError a user should see for a Redis error met while connecting or calling."""
    raw = str(error)
    text = _scrub(raw, url)
    shown = redact(url)
    denied = explain_noperm(error)
    if denied is not None:
        return denied
    if isinstance(error, redis.AuthenticationError) or any(m in raw for m in _AUTH_MARKS):
        given = _password(url) is not None
        cause = "refused the password in the URL" if given else "requires a password"
        return AuthenticationFailed(
            f"Redis at {shown} {cause} ({text.split(':', maxsplit=1)[0] or 'NOAUTH'}): put the "
            "right one in the URL, redis://:PASSWORD@host:6379/0 or "
            "redis://USER:PASSWORD@host:6379/0, via --url or DOTHIS_REDIS_URL"
        )
    if "DB index is out of range" in raw:
        return InvalidUrl(
            f"Redis at {shown} has no database {_database(url)!r} (it has "
            "`databases` of them, 16 by default, numbered from 0): fix the /N at the end of the URL"
        )
    tls = _tls_problem(url, raw)
    if tls is not None:
        return ConnectionFailed(f"TLS with Redis at {shown} failed ({text}): {tls}")
    return ConnectionFailed(
        f"cannot reach Redis at {shown} ({text or type(error).__name__}): is redis-server "
        "running? set DOTHIS_REDIS_URL or pass --url"
    )


def _tls_problem(url: str, raw: str) -> str | None:
    """The fix for a failed TLS handshake (None when ``raw`` is no TLS error)."""
    if "CERTIFICATE_VERIFY_FAILED" in raw or "certificate verify failed" in raw:
        return (
            "the server's certificate is not signed by a CA this client trusts; give the CA "
            "that signed it with --tls-ca FILE, DOTHIS_TLS_CA or ?tls_ca=FILE in the URL "
            "(tls_ca= in the API); dothis never turns certificate checks off"
        )
    if "WRONG_VERSION_NUMBER" in raw or "wrong version number" in raw:
        return "the port does not speak TLS: use redis:// for it, or the server's tls-port"
    if "SSL" in raw and url.lower().startswith("rediss"):
        return (
            "check the CA (--tls-ca), and the client certificate and key (--tls-cert, --tls-key) "
            "when the server asks for one (tls-auth-clients yes)"
        )
    return None


def _database(url: str) -> str:
    try:
        return urlsplit(url).path.lstrip("/")
    except ValueError:
        return "?"


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


def _invalid(url: str, error: Exception) -> InvalidUrl:
    return InvalidUrl(
        f"invalid Redis URL {redact(url)!r} ({_scrub(str(error), url)}): write it as "
        "redis://[:PASSWORD@]HOST:PORT/DB, e.g. redis://127.0.0.1:6379/0"
    )


def connect(url: str, *, blocking_seconds: float | None = None) -> SyncClient:
    """A synchronous client; no automatic retries (callers decide what a failure means).

    The URL decides what it is (store/topology.py): a client of one server, of the primary that
    Sentinel names (asked again after a lost connection), or of a Redis Cluster (typed as a plain
    client: every call dothis makes on one has its keys in one slot)."""
    target = topology.parse(url)
    options = {**_options(blocking_seconds), **target.tls}
    try:
        if target.sentinels:
            return clients.sentinel_sync(target, {**options, "retry": Retry(NoBackoff(), 0)})
        if target.cluster:
            with translate_errors(url):
                return clients.cluster_sync(target, options)
        return redis.Redis.from_url(target.url, retry=Retry(NoBackoff(), 0), **options)
    except ValueError as error:
        raise _invalid(url, error) from error


def connect_async(url: str, *, blocking_seconds: float | None = None) -> AsyncClient:
    """An asyncio client with the same settings as ``connect``."""
    target = topology.parse(url)
    options = {**_options(blocking_seconds), **target.tls}
    try:
        if target.sentinels:
            return clients.sentinel_async(target, {**options, "retry": AsyncRetry(NoBackoff(), 0)})
        if target.cluster:
            return clients.cluster_async(target, options)
        return aioredis.Redis.from_url(target.url, retry=AsyncRetry(NoBackoff(), 0), **options)
    except ValueError as error:
        raise _invalid(url, error) from error


def connect_node(url: str) -> SyncClient:
    """A client of one server for PUBLISH and SUBSCRIBE: on a cluster, the node the URL names
    (a classic PUBLISH on any node reaches the subscribers of every node); else ``connect``."""
    target = topology.parse(url)
    if not target.cluster:
        return connect(url)
    try:
        return redis.Redis.from_url(target.url, retry=Retry(NoBackoff(), 0),
                                    **{**_options(None), **target.tls})  # fmt: skip
    except ValueError as error:
        raise _invalid(url, error) from error


def preflight(url: str, queues: list[str], log: logging.Logger) -> None:
    """A worker's checks of the topology, once at start (docs/topology.md): on a cluster, every
    queue name carries a hash tag; a cluster node is not used without cluster mode; a warning is
    logged when acknowledged writes are not replicated. An unreachable Redis is left to the worker
    to report."""
    target = topology.parse(url)
    topology.check_queues(url, queues)
    try:
        client = connect(url)
    except DothisError:
        return
    try:
        if not target.cluster and clients.is_cluster_node(client):
            raise InvalidUrl(
                f"Redis at {redact(url)} is a node of a Redis Cluster: pass --cluster "
                "(cluster=True in the API, DOTHIS_CLUSTER=1) and name each queue with a hash "
                "tag, {emails}"
            )
        for node in clients.primaries(client, target):
            warning = clients.replication_warning(node, target)
            if warning is not None:
                log.warning("Redis at %s: %s", redact(url), warning)
                return
    except (*REDIS_ERRORS, redis.ResponseError, RedisClusterException):
        return
    finally:
        client.close()


def is_setup_error(error: BaseException) -> bool:
    """A Redis reply that no retry will fix: a password or database problem."""
    text = str(error)
    return isinstance(error, redis.AuthenticationError) or "DB index is out of range" in text or \
        any(mark in text for mark in _AUTH_MARKS)  # fmt: skip


@contextmanager
def translate_errors(url: str) -> Iterator[None]:
    """Turn redis-py's connection, password and database errors into DothisErrors that name the
    URL and the fix."""
    try:
        yield
    except RedisClusterException as error:  # no node of the cluster answered
        raise explain(url, error) from error
    except REDIS_OR_REPLY_ERRORS as error:
        if isinstance(error, redis.ResponseError) and not is_setup_error(error):
            denied = explain_noperm(error)
            if denied is not None:
                raise denied from error
            raise
        raise explain(url, error) from error
