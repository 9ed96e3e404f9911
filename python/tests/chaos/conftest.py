"""The chaos group: fault-injection scenarios, each adding a row to a table printed at the end.

``bash scripts/chaos.sh`` runs it at full size (DOTHIS_CHAOS=full); the ordinary test run runs
the bounded sizes. Select it alone with ``-m chaos``.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from chaos.checker import CHAOS_ROW, History, Row
from chaos.harness import ChaosRedis, Fleet, Proxy

ROWS_OF: dict[str, list[Row]] = {}  # test node id -> the rows it added


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "chaos: fault-injection scenarios (bounded sizes unless DOTHIS_CHAOS=full)"
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A scenario marked xfail (a known bug of the code under test) that failed says so in its
    row; one that passed anyway says that. The rows travel with the report (also from a pytest-xdist
    worker process), and python/tests/conftest.py prints them as one table at the end."""
    report = yield
    if report.when == "call":
        for row in ROWS_OF.get(item.nodeid, []):
            if hasattr(report, "wasxfail") and report.skipped:
                row.verdict = "xfail (known bug)"
            elif report.passed and item.get_closest_marker("xfail") is not None:
                row.verdict = f"{row.verdict} (xpass)"
            report.user_properties.append((CHAOS_ROW, dataclasses.asdict(row)))
    return report


@pytest.fixture
def table(request: pytest.FixtureRequest) -> Callable[[Row], Row]:
    """Add a row to the chaos table (before asserting, so a failing scenario shows too)."""

    def add(row: Row) -> Row:
        ROWS_OF.setdefault(request.node.nodeid, []).append(row)
        return row

    return add


@pytest.fixture(scope="module")
def server() -> Iterator[ChaosRedis]:
    """One private redis-server per test module (no persistence)."""
    instance = ChaosRedis()
    yield instance
    instance.stop()


@pytest.fixture
def servers() -> Iterator[Callable[..., ChaosRedis]]:
    """Make private redis-servers for one test (e.g. with AOF); all are killed at teardown."""
    made: list[ChaosRedis] = []

    def make(*, aof: bool = False, extra: tuple[str, ...] = ()) -> ChaosRedis:
        instance = ChaosRedis(aof=aof, extra=extra)
        made.append(instance)
        return instance

    yield make
    for instance in made:
        instance.stop()


@pytest.fixture
def proxies() -> Iterator[Callable[[int], Proxy]]:
    """Make TCP proxies in front of a redis-server port; all are closed at teardown."""
    made: list[Proxy] = []

    def make(port: int) -> Proxy:
        proxy = Proxy(port)
        made.append(proxy)
        return proxy

    yield make
    for proxy in made:
        proxy.close()


@pytest.fixture
def queue_name() -> str:
    return f"chaos{uuid.uuid4().hex[:10]}"


@pytest.fixture
def history(tmp_path: Path) -> History:
    return History(tmp_path / "executions.log")


@pytest.fixture
def fleets() -> Iterator[Callable[..., Fleet]]:
    """Make worker fleets; every process any of them started is killed at teardown."""
    made: list[Fleet] = []

    def make(url: str, queue: str, *options: str, log: Path, **kwargs: object) -> Fleet:
        fleet = Fleet(url, queue, *options, log=log, **kwargs)  # type: ignore[arg-type]
        made.append(fleet)
        return fleet

    yield make
    for fleet in made:
        fleet.close()


@pytest.fixture
def client(server: ChaosRedis) -> Iterator[redis.Redis]:
    connection = server.client()
    yield connection
    connection.close()
