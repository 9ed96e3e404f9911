"""Gauges of queues read from Redis, for Prometheus (``dothis metrics``): a custom collector that
polls ``queue_info`` (producer/inspection.py) for each queue, at most once per ``interval``.

``dothis_queue_tasks{queue,state}``
    Tasks of the queue in each state: ``pending``, ``scheduled``, ``waiting`` (for the tasks they
    depend on), ``executing``, and the entries of its registries ``failed``, ``succeeded``,
    ``rejected``.
``dothis_queue_oldest_pending_seconds{queue}``
    How long the next pending task has waited; 0 when nothing is pending.
``dothis_queue_workers{queue}``
    Live workers serving the queue (its registry ``<queue>:workers``).
``dothis_queue_redis_up``
    1 when the last poll read every queue, 0 when Redis (or one queue's keys) failed it; the
    queues it could not read are left out of that poll's gauges.

One poll per interval, however many scrapes: the values are cached under a lock, a scrape that
finds them older than ``interval`` polls (scrapes arriving meanwhile wait for it and share it),
and nothing polls while nobody scrapes. Which queues: the names given, or (None) every queue of
the registry of queues ``dothis.queues``, read again at each poll.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.exceptions import ResponseError

from dothis.errors import DothisError
from dothis.metrics_http import MetricsServer
from dothis.producer.inspection import known_queues, queue_info
from dothis.producer.queue import Queue
from dothis.store.connection import (
    REDIS_OR_REPLY_ERRORS,
    SyncClient,
    connect,
    redact,
    resolve_url,
    translate_errors,
)
from dothis.wire.protocol import QUEUES_REGISTRY

log = logging.getLogger("dothis.metrics")

STATES = ("pending", "scheduled", "waiting", "executing", "failed", "succeeded", "rejected")
DEFAULT_INTERVAL = 5.0
FAILURES = (DothisError, *REDIS_OR_REPLY_ERRORS)


def _families(infos: dict[str, dict[str, Any]], up: int | None) -> list[Metric]:
    tasks = GaugeMetricFamily("dothis_queue_tasks", "Tasks of the queue in each state",
                              labels=["queue", "state"])  # fmt: skip
    oldest = GaugeMetricFamily("dothis_queue_oldest_pending_seconds", "How long the next pending "
                               "task has waited (0: none pending)", labels=["queue"])  # fmt: skip
    workers = GaugeMetricFamily("dothis_queue_workers", "Live workers serving the queue",
                                labels=["queue"])  # fmt: skip
    for name, info in infos.items():
        for state in STATES:
            tasks.add_metric([name, state], float(info[state]))
        oldest.add_metric([name], float(info["oldest_pending_seconds"] or 0.0))
        workers.add_metric([name], float(len(info["workers"])))
    redis_up = GaugeMetricFamily("dothis_queue_redis_up", "1 when the last poll read every queue",
                                 value=up)  # fmt: skip
    return [tasks, oldest, workers, redis_up]


class QueueGauges(Collector):
    """The collector: ``collect()`` serves the cached values, polling Redis first when they are
    older than ``interval`` seconds (``clock``: seconds, monotonic)."""

    def __init__(
        self,
        url: str | None,
        queues: Sequence[str] | None = None,
        interval: float = DEFAULT_INTERVAL,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be a number of seconds > 0, not {interval!r}")
        self.url = resolve_url(url)
        self.interval = interval
        self.clock = clock
        self.names = None if queues is None else list(dict.fromkeys(queues))
        self._queues: dict[str, Queue] = {}
        for name in self.names or ():
            self._queue(name)  # a name that is no queue name fails here, not at a scrape
        self._client: SyncClient | None = None
        self._lock = threading.Lock()
        self._polled_at: float | None = None
        self._families: list[Metric] = []

    def describe(self) -> Iterable[Metric]:
        """The families' names without samples (registering does not poll)."""
        return _families({}, None)

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            if self._polled_at is None or self.clock() - self._polled_at >= self.interval:
                try:
                    self._families = self.poll()
                finally:  # even a poll that raised waits its interval before the next
                    self._polled_at = self.clock()
            return list(self._families)

    def poll(self) -> list[Metric]:
        """Read every queue's counts from Redis now (``collect`` calls it once per interval)."""
        infos: dict[str, dict[str, Any]] = {}
        up = 1
        try:
            names = self._names()
        except FAILURES as error:
            log.warning("cannot read the registry of queues %s: %s", QUEUES_REGISTRY, error)
            return _families(infos, 0)
        for name in names:
            try:
                infos[name] = queue_info(self._queue(name))
            except ResponseError as error:  # this queue's keys (one of the wrong type)
                log.warning("cannot read queue %r: %s", name, error)
                up = 0
            except FAILURES as error:  # Redis itself: every other queue would wait for it too
                log.warning("cannot read queue %r: %s", name, error)
                return _families(infos, 0)
        return _families(infos, up)

    def _names(self) -> list[str]:
        if self.names is not None:
            return self.names
        if self._client is None:
            self._client = connect(self.url)
        with translate_errors(self.url):
            found = known_queues(self._client)
        names = []
        for name in found:
            try:
                self._queue(name)
            except DothisError:  # not a queue name: ignored, as every reader of the registry does
                continue
            names.append(name)
        for gone in set(self._queues) - set(names):  # left the registry
            self._queues.pop(gone).close()
        return names

    def _queue(self, name: str) -> Queue:
        queue = self._queues.get(name)
        if queue is None:
            queue = self._queues[name] = Queue(name, self.url)
        return queue

    def check(self) -> None:
        """Reach Redis once (a wrong URL or password fails here, not at the first scrape)."""
        with self._lock:
            if self._client is None:
                self._client = connect(self.url)
            with translate_errors(self.url):
                self._client.ping()

    def close(self) -> None:
        with self._lock:
            for queue in self._queues.values():
                queue.close()
            self._queues.clear()
            if self._client is not None:
                self._client.close()
                self._client = None


class Exporter:
    """The queue gauges in a registry of their own, served over HTTP at /metrics."""

    def __init__(
        self,
        url: str | None,
        queues: Sequence[str] | None = None,
        interval: float = DEFAULT_INTERVAL,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.gauges = QueueGauges(url, queues, interval, clock=clock)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.gauges)
        self.http = MetricsServer(self.registry)

    def serve(self, port: int, host: str = "127.0.0.1") -> int:
        """Serve /metrics on ``host:port`` from a daemon thread (port 0: a free one); the port."""
        if self.http.port is None:
            self.gauges.check()
        return self.http.serve(port, host)

    def close(self) -> None:
        self.http.close()
        self.gauges.close()


def serve(
    url: str | None,
    queues: Sequence[str] | None,
    port: int,
    host: str = "127.0.0.1",
    interval: float = DEFAULT_INTERVAL,
) -> int:
    """Serve the gauges of ``queues`` (None: every registered queue) in a daemon thread; the
    port (``port`` 0: a free one)."""
    return Exporter(url, queues, interval).serve(port, host)


def run(
    url: str | None,
    queues: Sequence[str] | None,
    port: int,
    host: str = "127.0.0.1",
    interval: float = DEFAULT_INTERVAL,
) -> None:
    """``dothis metrics``: serve the gauges until KeyboardInterrupt."""
    exporter = Exporter(url, queues, interval)
    bound = exporter.serve(port, host)
    log.info("queue metrics of %s (%s) on http://%s:%d/metrics, Redis read at most every %g s",
             redact(exporter.gauges.url), ", ".join(queues) if queues is not None
             else f"every queue of {QUEUES_REGISTRY}", host, bound, interval)  # fmt: skip
    forever = threading.Event()
    try:
        while not forever.wait(3600):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        exporter.close()
