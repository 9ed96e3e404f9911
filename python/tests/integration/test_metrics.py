"""Prometheus metrics against a real redis-server, scraped over real HTTP on loopback: the worker's
counters from its task events, and the queue gauges, polled at most once per interval."""

from __future__ import annotations

import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from support import free_port, wait_until

import dothis.examples  # noqa: F401  (registers add in the default registry)
from dothis import Queue, Registry, Worker, WorkerOptions
from dothis.engine.events import Kind, TaskEvent
from dothis.producer import gauges
from dothis.wire.protocol import QUEUES_REGISTRY
from dothis.worker.metrics import WorkerMetrics, attach

pytestmark = pytest.mark.integration
FAST = {"pool": "thread", "schedule_ms": 20, "retry_base_ms": 20, "retry_max_ms": 40}


def scrape(port: int) -> list[Sample]:
    """Every sample of http://127.0.0.1:<port>/metrics, parsed by prometheus_client."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def values(samples: list[Sample], name: str, *labels: str) -> dict[tuple[str, ...], float]:
    """The samples called ``name``, keyed by the values of ``labels``."""
    return {tuple(sample.labels[label] for label in labels): sample.value
            for sample in samples if sample.name == name}  # fmt: skip


def worker_registry() -> Registry:
    registry = Registry()
    tries: list[int] = []

    def ok() -> str:
        return "ok"

    def boom() -> None:
        raise RuntimeError("boom")

    def flaky() -> str:
        tries.append(1)
        if len(tries) < 2:
            raise ValueError("not yet")
        return "done"

    for function in (ok, boom, flaky):
        registry.add(function, name=function.__name__)
    return registry


def test_worker_metrics_count_the_task_events(url, r, queue_name, start_worker) -> None:
    registry = worker_registry()
    thread = start_worker(registry, **FAST)
    worker = thread.worker
    metrics = WorkerMetrics(worker=worker.id, queues=worker.queues, functions=registry,
                            pool="thread", concurrency=worker.options.concurrency)  # fmt: skip
    metrics.listen(worker.observers)
    port = metrics.serve(0)
    try:
        with Queue(queue_name, url) as queue:
            assert queue.enqueue("ok").wait(timeout=10) == "ok"
            queue.enqueue("boom")
            assert queue.enqueue("flaky", attempts=2).wait(timeout=10) == "done"
            queue.enqueue("nope")  # no such function: fails before it starts
            r.lpush(queue.keys.pending, "nohash")  # no hash: rejected
        expected = {
            ("ok", "succeeded"): 1.0,
            ("boom", "failed"): 1.0,
            ("flaky", "retried"): 1.0,
            ("flaky", "succeeded"): 1.0,
            ("", "failed"): 1.0,  # the function label is bounded by the worker's registry
            ("", "rejected"): 1.0,
        }
        samples = wait_until(lambda: (found := scrape(port)) and values(
            found, "dothis_tasks_total", "function", "event") == expected and found)  # fmt: skip
        assert set(values(samples, "dothis_tasks_total", "queue")) == {(queue_name,)}
        assert values(samples, "dothis_task_failures_total", "queue", "function", "code") == {
            (queue_name, "boom", "exception"): 1.0,
            (queue_name, "", "unknown-function"): 1.0,
        }
        # every try that ran, and only those: flaky ran twice, "nope" never
        assert values(samples, "dothis_task_duration_seconds_count", "function") == {
            ("ok",): 1.0, ("boom",): 1.0, ("flaky",): 2.0,
        }  # fmt: skip
        buckets = values(samples, "dothis_task_duration_seconds_bucket", "function", "le")
        assert buckets[("ok", "0.001")] <= buckets[("ok", "600.0")] == buckets[("ok", "+Inf")] == 1
        assert values(samples, "dothis_tasks_in_flight", "queue") == {(queue_name,): 0.0}
        info = [sample.labels for sample in samples if sample.name == "dothis_worker_info"]
        assert len(info) == 1 and info[0]["worker"] == worker.id
        assert info[0]["pool"] == "thread" and info[0]["queues"] == queue_name
        assert info[0]["version"] and info[0]["concurrency"] == str(worker.options.concurrency)
    finally:
        metrics.close()
    assert metrics.observe not in worker.observers.observers
    with pytest.raises(urllib.error.URLError):
        scrape(port)


def test_in_flight_follows_started_tries_and_never_goes_negative() -> None:
    metrics = WorkerMetrics(queues=["q"], functions={"f"})

    def event(kind: Kind, task_id: str, **fields: object) -> TaskEvent:
        return TaskEvent(kind, "q", task_id, "w", "f", **fields)  # type: ignore[arg-type]

    def in_flight() -> float | None:
        return metrics.registry.get_sample_value("dothis_tasks_in_flight", {"queue": "q"})

    assert in_flight() == 0.0  # the series exists before the first task
    metrics.observe(event(Kind.CANCELLED, "a", code="cancelled"))  # cancelled before it started
    metrics.observe(event(Kind.FAILED, "b", code="worker-lost"))  # a reaper's, not started here
    assert in_flight() == 0.0
    metrics.observe(event(Kind.STARTED, "c"))
    metrics.observe(event(Kind.STARTED, "d"))
    assert in_flight() == 2.0
    metrics.observe(event(Kind.RETRIED, "c", seconds=0.5, code="exception"))
    metrics.observe(event(Kind.DISCARDED, "d", seconds=0.25))
    metrics.observe(event(Kind.DISCARDED, "d"))
    assert in_flight() == 0.0
    metrics.observe(event(Kind.FAILED, "e", code="made-up"))
    sample = metrics.registry.get_sample_value
    assert sample("dothis_task_failures_total", {"queue": "q", "function": "f",
                                                 "code": "other"}) == 1.0  # fmt: skip
    assert sample("dothis_task_duration_seconds_count", {"queue": "q", "function": "f"}) == 2.0
    metrics.observe(TaskEvent(Kind.SUCCEEDED, "q", "g", "w", "unregistered", seconds=0.1))
    assert sample("dothis_tasks_total", {"queue": "q", "function": "", "event": "succeeded"}) == 1


def test_attach_serves_a_worker_whose_options_ask_for_it(url, queue_name) -> None:
    assert attach(Worker(queue_name, url, registry=Registry())) is None
    worker = Worker(queue_name, url, registry=worker_registry(),
                    options=WorkerOptions(pool="thread", metrics_port=0))  # fmt: skip
    metrics = attach(worker)
    assert metrics is not None and metrics.port
    try:
        assert metrics.observe in worker.observers.observers
        samples = scrape(metrics.port)
        assert values(samples, "dothis_tasks_in_flight", "queue") == {(queue_name,): 0.0}
        info = values(samples, "dothis_worker_info", "worker", "pool", "queues")
        assert info == {(worker.id, "thread", queue_name): 1.0}
        assert any(sample.name == "process_cpu_seconds_total" for sample in samples)
    finally:
        metrics.close()
    assert metrics.observe not in worker.observers.observers


# -- the queue gauges ------------------------------------------------------------------------


@pytest.fixture
def polls(monkeypatch) -> list[str]:
    """The names of the queues the gauges polled, one per poll of each queue."""
    polled: list[str] = []
    real = gauges.queue_info

    def counting(queue: Queue) -> dict[str, object]:
        polled.append(queue.name)
        return real(queue)

    monkeypatch.setattr(gauges, "queue_info", counting)
    return polled


def test_queue_gauges_poll_redis_once_per_interval(url, r, queue_name, polls) -> None:
    now = [1000.0]
    with Queue(queue_name, url) as queue:
        for number in range(5):
            queue.enqueue("echo", text=str(number))
        queue.enqueue("echo", delay=3600, text="later")
        r.lpush(queue.keys.rejected, "x")
        exporter = gauges.Exporter(url, [queue_name], interval=5.0, clock=lambda: now[0])
        port = exporter.serve(0)
        try:
            assert polls == []  # nothing polls while nobody scrapes
            first, second = scrape(port), scrape(port)
            with ThreadPoolExecutor(8) as pool:
                together = list(pool.map(lambda _: scrape(port), range(16)))
            assert polls == [queue_name]  # 18 scrapes, one poll
            assert all(samples == first for samples in [second, *together])
            assert values(first, "dothis_queue_tasks", "queue", "state") == {
                (queue_name, "pending"): 5.0,
                (queue_name, "scheduled"): 1.0,
                (queue_name, "waiting"): 0.0,
                (queue_name, "executing"): 0.0,
                (queue_name, "failed"): 0.0,
                (queue_name, "succeeded"): 0.0,
                (queue_name, "rejected"): 1.0,
            }
            oldest = values(first, "dothis_queue_oldest_pending_seconds", "queue")
            assert set(oldest) == {(queue_name,)} and 0 <= oldest[(queue_name,)] < 60
            assert values(first, "dothis_queue_workers", "queue") == {(queue_name,): 0.0}
            assert values(first, "dothis_queue_redis_up") == {(): 1.0}

            queue.enqueue("echo", text="more")
            now[0] += 4.9
            pending = ("dothis_queue_tasks", "state")
            assert values(scrape(port), *pending)[("pending",)] == 5.0  # cached
            assert len(polls) == 1
            now[0] += 0.1  # the interval is over: the next scrape polls
            assert values(scrape(port), *pending)[("pending",)] == 6.0
            assert values(scrape(port), *pending)[("pending",)] == 6.0
            assert polls == [queue_name, queue_name]
        finally:
            exporter.close()


def test_queue_gauges_poll_again_after_the_interval_on_the_clock(url, queue_name, polls) -> None:
    exporter = gauges.Exporter(url, [queue_name], interval=0.2)
    port = exporter.serve(0)
    try:
        scrape(port)
        assert len(polls) == 1
        wait_until(lambda: scrape(port) and len(polls) == 2, timeout=5)
    finally:
        exporter.close()


def test_queue_gauges_read_the_registry_of_queues(url, r, queue_name, polls) -> None:
    other = f"{queue_name}-other"
    r.zadd(QUEUES_REGISTRY, {queue_name: 1, other: 2})
    try:
        with Queue(queue_name, url) as queue:
            queue.enqueue("echo", text="x")
        exporter = gauges.Exporter(url, None)
        port = exporter.serve(0)
        try:
            found = values(scrape(port), "dothis_queue_tasks", "queue", "state")
            assert found[(queue_name, "pending")] == 1.0 and found[(other, "pending")] == 0.0
            assert {queue_name, other} <= set(polls)
        finally:
            exporter.close()
    finally:
        r.zrem(QUEUES_REGISTRY, queue_name, other)


def test_queue_gauges_report_what_they_could_not_read(url, r, queue_name) -> None:
    broken = f"{queue_name}-broken"
    r.set(f"{broken}:pending", "not a list")
    collector = gauges.QueueGauges(url, [queue_name, broken])
    try:
        families = {family.name: family.samples for family in collector.collect()}
        assert [sample.labels["queue"] for sample in families["dothis_queue_workers"]] == [
            queue_name
        ]
        assert [sample.value for sample in families["dothis_queue_redis_up"]] == [0.0]
    finally:
        collector.close()
        r.delete(f"{broken}:pending")
    unreachable = gauges.QueueGauges(f"redis://127.0.0.1:{free_port()}/0", [queue_name])
    families = {family.name: family.samples for family in unreachable.collect()}
    assert families["dothis_queue_tasks"] == []
    assert [sample.value for sample in families["dothis_queue_redis_up"]] == [0.0]
    unreachable.close()


def test_a_worker_started_with_a_metrics_port_serves_its_metrics(queue, start_worker) -> None:  # type: ignore[no-untyped-def]
    """As `dothis worker --metrics-port` starts it: the worker serves, and counts, by itself."""
    worker = start_worker(metrics_port=0).worker
    port = wait_until(lambda: worker.metrics is not None and worker.metrics.port, timeout=10)
    assert queue.enqueue("add", a=1, b=2).wait(timeout=10) == 3
    tasks = wait_until(lambda: values(scrape(port), "dothis_tasks_total", "function", "event")
                       or None, timeout=10)  # fmt: skip
    assert tasks == {("add", "succeeded"): 1.0}
