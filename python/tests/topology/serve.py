"""Start one topology for another process (the Node client's tests): ``python serve.py tls``,
``sentinel`` or ``cluster`` prints one JSON line describing it, then keeps it running until its
standard input closes, and stops every server by pid.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]  # python/tests: support, topology

from topology.servers import Cluster, Group, SentinelSet, TlsServer  # noqa: E402


def describe(kind: str) -> tuple[Group, dict[str, object]]:
    if kind == "tls":
        tls = TlsServer()
        return tls, {"url": tls.url, "ca": str(tls.ca[0]), "otherCa": str(tls.other_ca[0]),
                     "cert": str(tls.client_cert[0]), "key": str(tls.client_cert[1])}  # fmt: skip
    if kind == "sentinel":
        sentinel = SentinelSet()
        return sentinel, {"url": sentinel.url, "service": sentinel.service,
                          "sentinels": [s.port for s in sentinel.sentinels]}  # fmt: skip
    cluster = Cluster()
    return cluster, {"url": cluster.url, "nodes": [node.port for node in cluster.nodes]}


def main() -> None:
    group, description = describe(sys.argv[1])
    try:
        print(json.dumps(description), flush=True)
        sys.stdin.read()  # until the parent closes it (or exits)
    finally:
        group.stop()


if __name__ == "__main__":
    main()
