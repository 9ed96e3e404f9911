"""The pytest plugin of the testing kit (registered by entry point, inert until used).

pytest loads it in every run where dothis is installed, so it does nothing until a test asks for
one of its fixtures (or ``--dothis-eager`` is given): no redis-server at import or session start,
only pytest imported here (the kit's modules are imported by the fixture that needs them), and
every name starts with ``dothis_``. See ``dothis.testing`` for the guide.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from dothis.producer.queue import Queue
    from dothis.testing.burst import Runner
    from dothis.testing.clock import Clock
    from dothis.testing.server import RedisServer

EAGER_HELP = (
    "dothis: run every @task's .delay()/.enqueue() at once, in the test's process "
    "(set_always_eager), against the kit's own redis-server, for the whole session"
)


class _Server:
    """The session's one redis-server, started on first use, stopped at the end of the run."""

    def __init__(self) -> None:
        self.server: RedisServer | None = None

    def url(self) -> str:
        if self.server is None:
            from dothis.testing.server import RedisServer

            self.server = RedisServer()
        return self.server.url

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


_SERVER = pytest.StashKey[_Server]()
_UNDO = pytest.StashKey[ExitStack]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dothis", "dothis testing kit")
    group.addoption("--dothis-eager", action="store_true", default=False, help=EAGER_HELP)
    parser.addini("dothis_eager", EAGER_HELP, type="bool", default=False)


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_SERVER] = _Server()
    if config.getoption("--dothis-eager") or config.getini("dothis_eager"):
        _eager_session(config)


def _eager_session(config: pytest.Config) -> None:
    from dothis.testing.env import always_eager, redis_url_env
    from dothis.testing.server import RedisNotInstalled

    try:
        url = config.stash[_SERVER].url()
    except RedisNotInstalled as error:
        raise pytest.UsageError(f"--dothis-eager: {error}") from None
    stack = ExitStack()
    stack.enter_context(redis_url_env(url))
    stack.enter_context(always_eager(True))
    config.stash[_UNDO] = stack


def pytest_unconfigure(config: pytest.Config) -> None:
    undo = config.stash.get(_UNDO, None)
    if undo is not None:
        undo.close()
    server = config.stash.get(_SERVER, None)
    if server is not None:
        server.stop()


def _url(config: pytest.Config) -> str:
    from dothis.testing.server import RedisNotInstalled

    try:
        return config.stash[_SERVER].url()
    except RedisNotInstalled as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="session")
def dothis_redis_url(pytestconfig: pytest.Config) -> str:
    """The URL of the session's own redis-server (started on first use, on a free loopback port,
    no persistence; stopped at the end of the run)."""
    return _url(pytestconfig)


@pytest.fixture
def dothis_queue(dothis_redis_url: str) -> Iterator[Queue]:
    """A ``dothis.Queue`` of a fresh name on the kit's server; its keys deleted after the test."""
    from dothis.producer.queue import Queue

    queue = Queue(f"test-{uuid.uuid4().hex[:12]}", dothis_redis_url)
    try:
        yield queue
    finally:
        queue.close()
        with Queue(queue.name, dothis_redis_url) as cleaner:
            cleaner.delete()


@pytest.fixture
def dothis_worker(dothis_queue: Queue) -> Runner:
    """Runs what ``dothis_queue`` holds now, in the test's process: ``dothis_worker.run()``
    returns what ran (see ``dothis.testing.run_queued``); set ``.registry`` or pass one."""
    from dothis.testing.burst import Runner

    return Runner(dothis_queue)


@pytest.fixture
def dothis_clock() -> Iterator[Clock]:
    """The protocol clock, moved forward with ``.advance(seconds)``; put back after the test."""
    from dothis.testing.clock import Clock

    with Clock() as clock:
        yield clock


@pytest.fixture
def dothis_env(dothis_redis_url: str) -> Iterator[str]:
    """``$DOTHIS_REDIS_URL`` names the kit's server during the test, so application code that
    queues without a URL (``send_mail.delay(...)``) writes there; the server's database is
    emptied after the test."""
    from dothis.testing.env import flush, redis_url_env

    try:
        with redis_url_env(dothis_redis_url):
            yield dothis_redis_url
    finally:
        flush(dothis_redis_url)


@pytest.fixture
def dothis_eager(dothis_env: str) -> Iterator[str]:
    """Eager mode for one test: every ``@task`` function's ``.delay()`` runs at once, in the
    test's process, on the kit's server (as ``dothis_env``); the previous mode after."""
    from dothis.testing.env import always_eager

    with always_eager(True):
        yield dothis_env
