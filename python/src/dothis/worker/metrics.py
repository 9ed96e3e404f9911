"""The worker's Prometheus metrics: an observer of task events (engine/events.py) that counts them
into a registry of its own, served over HTTP at ``/metrics``.

Every name is prefixed ``dothis_`` and in base units (seconds). ``queue`` is one of the worker's
queues; ``function`` is a name of the worker's registry, or ``""`` when the entry named none it
knows (a rejected entry, an unknown function, a task failed by a reaper), so a producer cannot grow
the number of series by naming functions.

``dothis_tasks_total{queue,function,event}``, counter
    Outcomes recorded by this worker, and what its reaper did. ``event`` is the kind of task event:
    ``succeeded``, ``failed``, ``cancelled``, ``expired``, ``retried`` (a try failed and another
    is scheduled), ``discarded`` (an outcome not recorded: the task was recovered meanwhile, or its
    hash was gone), ``rejected`` (an entry that names no usable task) or ``recovered`` (a reaper
    put a lost worker's task back in pending). The label is not called ``outcome``: that word
    names the ``result`` field of a hash (``successful``, ``failed``, ...), a different set.
``dothis_task_failures_total{queue,function,code}``, counter
    Tasks that ended ``failed``, by error code (SPEC.md 7.2; ``other`` for a code the protocol
    does not define): the sum over ``code`` is ``dothis_tasks_total{event="failed"}``. Tries that
    failed and were retried are counted in ``dothis_tasks_total{event="retried"}``.
``dothis_task_duration_seconds{queue,function}``, histogram
    How long each try ran, every try that ran (retried, discarded and final ones).
``dothis_tasks_in_flight{queue}``, gauge
    Tries running now: up when a try starts, down when its outcome (or next try) is recorded. An
    ending without a start here (a task cancelled or expired before it ran, a reaper's) leaves it.
``dothis_worker_info{worker,version,pool,concurrency,queues}``, info
    Always 1; the labels say which worker this is. ``queues`` is comma-separated, in priority order.
``process_*``
    The process collector of prometheus_client (CPU, memory, open files) of the worker process;
    tries running in pool children are not in it.

``attach(worker)`` wires all of it into a worker whose options set ``metrics_port``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Container, Sequence
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, ProcessCollector

from dothis.engine.events import ENDINGS, Kind, Observers, TaskEvent
from dothis.engine.registry import Registry
from dothis.metrics_http import MetricsServer
from dothis.version import __version__
from dothis.wire.protocol import ErrorCode
from dothis.worker.options import WorkerOptions

log = logging.getLogger("dothis.worker")

# From 1 ms to 10 min, about three buckets per decade.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0, 30.0, 60.0, 120.0, 300.0, 600.0)  # fmt: skip

# The events counted in dothis_tasks_total; STARTED shows in the in-flight gauge instead.
COUNTED = frozenset(Kind) - {Kind.STARTED}
# The events that end a try this worker started (and so bring the in-flight gauge down).
TRY_ENDINGS = frozenset({*ENDINGS, Kind.RETRIED, Kind.DISCARDED})
CODES = frozenset(ErrorCode)
UNKNOWN_FUNCTION = ""
OTHER_CODE = "other"


class WorkerMetrics:
    """The metrics of one worker, in a ``CollectorRegistry`` of their own (several workers in one
    process do not clash). ``functions`` bounds the ``function`` label (None: any name)."""

    def __init__(
        self,
        *,
        worker: str = "",
        queues: Sequence[str] = (),
        functions: Container[str] | None = None,
        pool: str = "",
        concurrency: int = 0,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.functions = functions
        labels = ["queue", "function"]
        self.tasks = Counter("dothis_tasks", "Task events: outcomes recorded, entries rejected, "
                             "tasks recovered", [*labels, "event"],
                             registry=self.registry)  # fmt: skip
        self.failures = Counter("dothis_task_failures", "Tasks that ended failed, by error code",
                                [*labels, "code"], registry=self.registry)  # fmt: skip
        self.duration = Histogram("dothis_task_duration_seconds", "How long each try ran",
                                  labels, buckets=DURATION_BUCKETS,
                                  registry=self.registry)  # fmt: skip
        self.in_flight = Gauge("dothis_tasks_in_flight", "Tries running now", ["queue"],
                               registry=self.registry)  # fmt: skip
        self.info = Info("dothis_worker", "This worker", registry=self.registry)
        self.info.info({"worker": worker, "version": __version__, "pool": pool,
                        "concurrency": str(concurrency), "queues": ",".join(queues)})  # fmt: skip
        ProcessCollector(registry=self.registry)
        for queue in queues:  # the series exist (at 0) before the first task
            self.in_flight.labels(queue)
        self._running: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self.http = MetricsServer(self.registry)
        self._observers: Observers | None = None

    def _function(self, name: str | None) -> str:
        if not name or (self.functions is not None and name not in self.functions):
            return UNKNOWN_FUNCTION
        return name

    def observe(self, event: TaskEvent) -> None:
        """An observer of task events (``Observers.add``): quick, no I/O."""
        queue, kind = event.queue, event.kind
        function = self._function(None if kind is Kind.REJECTED else event.function)
        if kind is Kind.STARTED:
            with self._lock:
                if (queue, event.task_id) in self._running:
                    return
                self._running.add((queue, event.task_id))
            self.in_flight.labels(queue).inc()
            return
        if kind in TRY_ENDINGS:
            with self._lock:
                started = (queue, event.task_id) in self._running
                self._running.discard((queue, event.task_id))
            if started:
                self.in_flight.labels(queue).dec()
        if kind in COUNTED:
            self.tasks.labels(queue, function, kind.value).inc()
        if kind is Kind.FAILED:
            code = event.code if event.code in CODES else OTHER_CODE
            self.failures.labels(queue, function, code).inc()
        if event.seconds is not None and kind in TRY_ENDINGS:
            self.duration.labels(queue, function).observe(event.seconds)

    def listen(self, observers: Observers) -> None:
        """Hear the events of ``observers`` until ``close()``."""
        observers.add(self.observe)
        self._observers = observers

    # -- serving ------------------------------------------------------------------------------

    @property
    def port(self) -> int | None:
        """The port /metrics is served on, or None."""
        return self.http.port

    def serve(self, port: int, host: str = "127.0.0.1") -> int:
        """Serve /metrics on ``host:port`` from a daemon thread (port 0: a free one); the port."""
        return self.http.serve(port, host)

    def close(self) -> None:
        """Stop serving, and stop hearing events if ``attach`` added this observer."""
        if self._observers is not None:
            if self.observe in self._observers.observers:
                self._observers.observers.remove(self.observe)
            self._observers = None
        self.http.close()


class Served(Protocol):
    """What ``attach`` reads of a Worker (worker/worker.py imports this module, not the reverse)."""

    @property
    def id(self) -> str: ...

    @property
    def queues(self) -> list[str]: ...

    @property
    def registry(self) -> Registry: ...

    @property
    def options(self) -> WorkerOptions: ...

    @property
    def observers(self) -> Observers: ...


def attach(worker: Served) -> WorkerMetrics | None:
    """When the worker's options set ``metrics_port``: its metrics, hearing its events and served
    on ``metrics_host:metrics_port``; else None. ``close()`` the result when the worker stops."""
    options = worker.options
    if options.metrics_port is None:
        return None
    metrics = WorkerMetrics(worker=worker.id, queues=worker.queues, functions=worker.registry,
                            pool=options.pool, concurrency=options.concurrency)  # fmt: skip
    port = metrics.serve(options.metrics_port, options.metrics_host)
    metrics.listen(worker.observers)
    log.info("metrics of worker %s on http://%s:%d/metrics", worker.id, options.metrics_host, port)
    return metrics
