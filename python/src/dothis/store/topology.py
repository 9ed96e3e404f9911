"""Where a URL leads: one Redis server, a primary found through Sentinel, or a Redis Cluster; over
TLS or not (docs/topology.md).

The URL carries every connection setting, so that each part of dothis that connects (worker,
heartbeat thread, progress writer, producer, results listener, CLI) reaches the same server the
same way from one string:

- ``rediss://HOST:PORT/DB?tls_ca=FILE&tls_cert=FILE&tls_key=FILE``: TLS, the server's certificate
  checked against ``tls_ca`` (else the system's CAs), a client certificate when ``tls_cert`` is set.
- ``redis+sentinel://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT...]/SERVICE[/DB]`` (``rediss+sentinel``
  for TLS): the primary that the sentinels name for SERVICE, asked again after every lost
  connection or READONLY reply.
- ``?cluster=1`` on any node's URL: a Redis Cluster.

``DOTHIS_TLS_CA``, ``DOTHIS_TLS_CERT``, ``DOTHIS_TLS_KEY`` and ``DOTHIS_CLUSTER`` stand for the
parameters a URL does not carry. Certificate checks are never turned off by dothis.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from dothis.errors import InvalidArguments, InvalidUrl

# dothis's own URL parameters, the variables standing for them, and redis-py's keyword for each.
TLS_PARAMETERS = (
    ("tls_ca", "DOTHIS_TLS_CA", "ssl_ca_certs"),
    ("tls_cert", "DOTHIS_TLS_CERT", "ssl_certfile"),
    ("tls_key", "DOTHIS_TLS_KEY", "ssl_keyfile"),
)
CLUSTER_PARAMETER, CLUSTER_VARIABLE = "cluster", "DOTHIS_CLUSTER"
SENTINEL_SCHEMES = {"redis+sentinel": "redis", "rediss+sentinel": "rediss"}
DEFAULT_SENTINEL_PORT = 26379
_TRUE = ("1", "true", "yes", "on")
_ADDRESS = re.compile(r"^(?:\[([^\]]+)\]|([^:\[\]\s/]+))(?::(\d{1,5}))?$")  # H, H:P, [IPV6]:P
_SENTINEL_FORM = (
    "write it as redis+sentinel://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT...]/SERVICE[/DB], e.g. "
    "redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster/0"
)


@dataclass(frozen=True)
class Target:
    """What one URL means: ``url`` is what redis-py reads (dothis's parameters taken out)."""

    url: str
    tls: dict[str, str] = field(default_factory=dict)  # redis-py's ssl_* keywords
    cluster: bool = False
    sentinels: tuple[tuple[str, int], ...] = ()
    service: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = None

    @property
    def uses_tls(self) -> bool:
        return self.url.lower().startswith("rediss")


def with_settings(
    url: str,
    *,
    tls_ca: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    cluster: bool | None = None,
) -> str:
    """``url`` with the given settings written into it as dothis's parameters (the others kept):
    what the API's ``tls_ca=`` ... ``cluster=`` and the CLI's ``--tls-ca`` ... ``--cluster`` do."""
    given = {"tls_ca": tls_ca, "tls_cert": tls_cert, "tls_key": tls_key}
    added = {name: os.fspath(value) for name, value in given.items() if value}
    if cluster is not None:
        added[CLUSTER_PARAMETER] = "1" if cluster else "0"
    if not added:
        return url
    try:
        parts = urlsplit(url)
    except ValueError as error:
        raise InvalidUrl(f"invalid Redis URL ({error})") from error
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in added]
    return urlunsplit(parts._replace(query=urlencode([*query, *added.items()])))


def parse(url: str) -> Target:
    """The target of ``url``; InvalidUrl when it cannot be used (a TLS file without rediss://, a
    Sentinel URL without a service name, a cluster over Sentinel)."""
    try:
        parts = urlsplit(url)
        pairs = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError as error:
        raise InvalidUrl(f"invalid Redis URL ({error})") from error
    ours = {k: v for k, v in pairs if k in {p[0] for p in TLS_PARAMETERS} | {CLUSTER_PARAMETER}}
    rest = urlencode([(k, v) for k, v in pairs if k not in ours])
    tls = {}
    for parameter, variable, keyword in TLS_PARAMETERS:
        value = ours.get(parameter) or os.environ.get(variable)
        if value:
            tls[keyword] = value
    flag = ours.get(CLUSTER_PARAMETER, os.environ.get(CLUSTER_VARIABLE, ""))
    cluster = flag.strip().lower() in _TRUE
    scheme = parts.scheme.lower()
    if scheme in SENTINEL_SCHEMES:
        target = replace(_sentinel(parts, SENTINEL_SCHEMES[scheme], rest, tls), cluster=cluster)
    else:
        target = Target(urlunsplit(parts._replace(query=rest)), tls, cluster)
    return _checked(target, bool(set(ours) - {CLUSTER_PARAMETER}))


def _checked(target: Target, tls_in_url: bool) -> Target:
    """``target``, its TLS settings dropped when it does not use TLS and they come from the
    environment; InvalidUrl when the URL itself sets them, or asks for Sentinel and Cluster."""
    if not target.uses_tls and target.tls:
        if tls_in_url:
            raise InvalidUrl(
                "a TLS certificate is set for a Redis URL that does not use TLS: write the URL as "
                "rediss://HOST:PORT/DB (or rediss+sentinel://...)"
            )
        target = replace(target, tls={})
    if target.cluster and target.sentinels:
        raise InvalidUrl(
            "the Redis URL asks for both Sentinel and Redis Cluster: a cluster is reached through "
            "any of its nodes' URLs (redis://HOST:PORT with --cluster), not through sentinels"
        )
    return target


def _sentinel(parts: Any, scheme: str, query: str, tls: dict[str, str]) -> Target:
    """``redis+sentinel://[[USER]:PASSWORD@]H:P[,H:P...]/SERVICE[/DB]``."""
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":") if userinfo else ("", "", "")
    nodes = []
    for item in hosts.split(","):
        match = _ADDRESS.match(item.strip())
        if match is None:
            raise InvalidUrl(f"invalid sentinel address {item!r}: {_SENTINEL_FORM}")
        ipv6, host, port = match.groups()
        nodes.append((ipv6 or host, int(port) if port else DEFAULT_SENTINEL_PORT))
    path = [piece for piece in parts.path.split("/") if piece]
    if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise InvalidUrl(f"a Sentinel URL names its service (and database): {_SENTINEL_FORM}")
    db = int(path[1]) if len(path) == 2 else 0
    plain = urlunsplit((scheme, "sentinel", f"/{db}", query, ""))
    return Target(
        plain, tls, False, tuple(nodes), unquote(path[0]), db,
        unquote(username) or None, unquote(password) if password else None,
    )  # fmt: skip


def hash_tag(name: str) -> str | None:
    """The hash tag Redis Cluster hashes for a key starting with ``name`` (None: none): what is
    between the first ``{`` and the first ``}`` after it, when that is not empty."""
    start = name.find("{")
    end = name.find("}", start + 1) if start != -1 else -1
    return name[start + 1 : end] if end > start + 1 else None


def check_queues(url: str, queues: list[str]) -> None:
    """On a cluster, every queue name carries a hash tag: InvalidArguments, at start, otherwise
    (its keys would live in several slots, and every script would fail with CROSSSLOT)."""
    if not parse(url).cluster:
        return
    untagged = [name for name in queues if hash_tag(name) is None]
    if untagged:
        fixed = ", ".join(f"{{{name}}}" for name in untagged)
        raise InvalidArguments(
            f"queue name(s) {', '.join(untagged)} carry no hash tag, and on a Redis Cluster the "
            f"keys of a queue must live in one slot: name the queue with braces, {fixed} (SPEC.md "
            "11); the producers, workers and redis-cli users of the queue all use that name"
        )
