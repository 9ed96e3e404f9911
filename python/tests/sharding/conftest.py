"""A three-master cluster for the sharded-queue tests, started once on first use and stopped by
pid at the end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from topology.servers import Cluster


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    group = Cluster()
    yield group
    group.stop()
