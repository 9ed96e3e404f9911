"""Session-wide topologies: each starts once, on first use, and stops by pid at the end."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from topology.servers import Cluster, SentinelSet, TlsServer


@pytest.fixture(scope="session")
def tls_server() -> Iterator[TlsServer]:
    server = TlsServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sentinel_set() -> Iterator[SentinelSet]:
    group = SentinelSet()
    yield group
    group.stop()


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    group = Cluster()
    yield group
    group.stop()


@pytest.fixture
def name() -> str:
    return f"t{uuid.uuid4().hex[:10]}"
