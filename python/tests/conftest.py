from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from support import RedisServer, WorkerProcess, WorkerThread

CHAOS_ROWS: list[dict[str, Any]] = []  # the chaos table's rows, from every (xdist) worker


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    from chaos.checker import CHAOS_ROW

    CHAOS_ROWS.extend(value for name, value in report.user_properties if name == CHAOS_ROW)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not CHAOS_ROWS:
        return
    from chaos.checker import Row, number, render
    from chaos.harness import MODE

    terminalreporter.write_sep("=", f"chaos scenarios ({MODE} sizes)")
    rows = sorted((Row(**fields) for fields in CHAOS_ROWS), key=number)
    for line in render(rows).splitlines():
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    yield server
    server.stop()


@pytest.fixture
def url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture
def r(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis_server.client()
    yield client
    client.close()


@pytest.fixture
def queue_name() -> str:
    """A fresh queue per test, so tests never see each other's keys."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def queue(url: str, queue_name: str) -> Iterator[Any]:
    """A producer on the test's fresh queue."""
    from dothis import Queue

    with Queue(queue_name, url) as producer:
        yield producer


@pytest.fixture
def start_worker(url: str, queue_name: str) -> Iterator[Callable[..., WorkerThread]]:
    from dothis import Registry, Worker, WorkerOptions

    started: list[WorkerThread] = []

    def start(registry: Registry | None = None, **options: Any) -> WorkerThread:
        options.setdefault("block_seconds", 0.5)
        worker = Worker(queue_name, url, registry=registry, options=WorkerOptions(**options))
        thread = WorkerThread(worker)
        started.append(thread)
        return thread

    yield start
    for thread in started:
        thread.stop()


@pytest.fixture
def spawn_worker(url: str, queue_name: str) -> Iterator[Callable[..., WorkerProcess]]:
    spawned: list[WorkerProcess] = []

    def spawn(*options: str, modules: tuple[str, ...] = ()) -> WorkerProcess:
        # DOTHIS_TEST_QUEUE tells a loaded module (periodic_tasks) which queue the test uses.
        process = WorkerProcess(url, queue_name, *options, modules=modules,
                                env={"DOTHIS_TEST_QUEUE": queue_name})  # fmt: skip
        spawned.append(process)
        return process

    yield spawn
    for process in spawned:
        process.stop()
