"""One trace across the queue: the producer writes the active span's W3C trace context into the
task's hash (traceparent, tracestate), the worker's middleware continues it in a CONSUMER span,
from Python and from the Node client alike (SPEC.md 3.1)."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from opentelemetry import context, trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from dothis import Call, Queue, Registry, TaskFailed
from dothis.wire.protocol import Keys
from dothis.worker import tracing

NODE_CLIENT = Path(__file__).resolve().parents[3] / "node-client"
W3C = TraceContextTextMapPropagator()


@pytest.fixture(scope="module", autouse=True)
def exporter() -> Iterator[InMemorySpanExporter]:
    """Spans of this process, in memory. The global provider can be set once per process: an SDK
    provider another test set is reused."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    processor = SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    yield exporter
    processor.shutdown()  # the exporter stops taking spans


@pytest.fixture
def spans(exporter: InMemorySpanExporter) -> InMemorySpanExporter:
    exporter.clear()
    return exporter


def traced_registry() -> Registry:
    registry = Registry()
    tracer = trace.get_tracer("test")

    @registry.register
    def traced() -> dict[str, Any]:
        with tracer.start_as_current_span("inside"):
            span = trace.get_current_span().get_span_context()
            return {"trace_id": f"{span.trace_id:032x}", "pid": os.getpid()}

    @registry.register
    async def traced_async(seconds: float) -> str:
        with tracer.start_as_current_span("inside"):
            await asyncio.sleep(seconds)  # the tries overlap on the worker's loop
            return f"{trace.get_current_span().get_span_context().trace_id:032x}"

    @registry.register
    def boom() -> None:
        raise ValueError("it went wrong")

    tracing.install(registry)
    return registry


def traceparent_of(span: trace.Span) -> str:
    ctx = span.get_span_context()
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"


def consumer_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.kind is SpanKind.CONSUMER]


def test_the_producer_writes_the_active_span_context(queue: Queue, r: redis.Redis) -> None:
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("request") as span:
        task = queue.enqueue("echo", text="hi")
        many = queue.enqueue_many([Call("echo", {"text": "a"}), Call("echo", {"text": "b"})])
    for one in [task, *many]:
        fields = r.hgetall(Keys(queue.name).task(one.id))
        assert fields[b"traceparent"].decode() == traceparent_of(span)
        assert b"tracestate" not in fields  # the span has no trace state


def test_a_remote_context_and_its_tracestate_travel_as_is(queue: Queue, r: redis.Redis) -> None:
    carrier = {"traceparent": f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-00",
               "tracestate": "vendor=abc,other=1"}  # fmt: skip
    token = context.attach(W3C.extract(carrier))
    try:
        task = queue.enqueue("echo", text="hi")
    finally:
        context.detach(token)
    fields = r.hgetall(Keys(queue.name).task(task.id))
    assert fields[b"traceparent"].decode() == carrier["traceparent"]  # not sampled: flags 00
    assert fields[b"tracestate"].decode() == carrier["tracestate"]


def test_outside_a_trace_nothing_is_written(queue: Queue, r: redis.Redis) -> None:
    task = queue.enqueue("echo", text="hi")
    fields = r.hgetall(Keys(queue.name).task(task.id))
    assert b"traceparent" not in fields and b"tracestate" not in fields


def test_install_puts_the_consumer_span_first_once() -> None:
    registry = Registry()
    registry.add_middleware(lambda task: None)
    tracing.install(registry)
    tracing.install(registry)
    assert registry.middleware.count(tracing.consumer_span) == 1
    assert registry.middleware[0] is tracing.consumer_span


def test_the_worker_continues_the_trace(queue, start_worker, spans) -> None:  # type: ignore[no-untyped-def]
    start_worker(traced_registry(), pool="thread")
    with trace.get_tracer("test").start_as_current_span("request") as request:
        task = queue.enqueue("traced", attempts=1)
    producer = request.get_span_context()
    assert task.wait(timeout=20)["trace_id"] == f"{producer.trace_id:032x}"
    [consumer] = consumer_spans(spans)
    assert consumer.name == f"process {queue.name}"
    assert consumer.parent is not None and consumer.parent.is_remote
    assert consumer.parent.trace_id == producer.trace_id
    assert consumer.parent.span_id == producer.span_id
    assert consumer.context.trace_id == producer.trace_id
    assert consumer.status.status_code is StatusCode.UNSET
    assert dict(consumer.attributes or {}) == {
        "messaging.system": "dothis",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": queue.name,
        "messaging.message.id": task.id,
        "messaging.client.id": consumer.attributes["messaging.client.id"],  # the worker's id
        "dothis.function": "traced",
        "dothis.try_number": 1,
    }
    [inside] = [span for span in spans.get_finished_spans() if span.name == "inside"]
    assert inside.parent is not None and inside.parent.span_id == consumer.context.span_id


def test_a_failing_task_ends_its_span_in_error(queue, start_worker, spans) -> None:  # type: ignore[no-untyped-def]
    start_worker(traced_registry(), pool="thread")
    with pytest.raises(TaskFailed, match="it went wrong"):
        queue.enqueue("boom").wait(timeout=20)
    [consumer] = consumer_spans(spans)
    assert consumer.status.status_code is StatusCode.ERROR
    assert consumer.status.description == "ValueError: it went wrong"
    assert consumer.attributes is not None and consumer.attributes["error.type"] == "ValueError"
    assert [event.name for event in consumer.events] == ["exception"]


def test_overlapping_async_tries_each_continue_their_own_trace(queue, start_worker, spans) -> None:  # type: ignore[no-untyped-def]
    start_worker(traced_registry(), pool="inline", concurrency=4)
    tracer = trace.get_tracer("test")
    sent = []
    for _ in range(4):
        with tracer.start_as_current_span("request") as request:
            sent.append((queue.enqueue("traced_async", seconds=0.3), request.get_span_context()))
    for task, producer in sent:
        assert task.wait(timeout=20) == f"{producer.trace_id:032x}"
    parents = [span.parent for span in consumer_spans(spans)]
    assert {(parent.trace_id, parent.span_id) for parent in parents if parent} == {
        (producer.trace_id, producer.span_id) for _, producer in sent
    }


def test_a_malformed_trace_context_is_absent_not_a_failure(queue, r, start_worker, spans) -> None:  # type: ignore[no-untyped-def]
    start_worker(traced_registry(), pool="inline")
    keys = Keys(queue.name)
    ids = []
    zero_trace = b"00-" + b"0" * 32 + b"-" + b"1" * 16 + b"-01"
    for traceparent, tracestate in [(b"garbage", b"\xff\xfe"), (zero_trace, b"=")]:
        task_id = str(uuid.uuid4())
        trace_fields = {"traceparent": traceparent, "tracestate": tracestate}
        r.hset(keys.task(task_id), mapping={"function": "traced", "args": "{}", **trace_fields})
        r.lpush(keys.pending, task_id)
        ids.append(task_id)
    for task_id in ids:
        task = queue.fetch(task_id)
        assert task is not None and task.wait(timeout=20)["trace_id"] != "0" * 32
    consumers = consumer_spans(spans)
    assert len(consumers) == 2 and all(span.parent is None for span in consumers)  # new traces


def test_the_process_pool_continues_the_trace_in_its_children(queue, start_worker) -> None:  # type: ignore[no-untyped-def]
    start_worker(traced_registry(), pool="process", concurrency=1)
    with trace.get_tracer("test").start_as_current_span("request") as request:
        task = queue.enqueue("traced")
    seen = task.wait(timeout=20)
    assert seen["pid"] != os.getpid()
    assert seen["trace_id"] == f"{request.get_span_context().trace_id:032x}"


def node_script() -> str:
    """Node makes up a remote parent, makes it the active context and enqueues inside it with the
    Node client; it prints the traceparent and the task id, then waits for the Python worker."""
    return """
import { randomBytes } from 'node:crypto';
import { context, defaultTextMapGetter, ROOT_CONTEXT } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { Queue } from './dist/esm/index.js';

context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
const traceparent = `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01`;
const parent = new W3CTraceContextPropagator().extract(
  ROOT_CONTEXT, { traceparent, tracestate: 'node=1' }, defaultTextMapGetter);
const queue = new Queue(process.env.DOTHIS_QUEUE, { url: process.env.DOTHIS_URL });
const task = await context.with(parent, () => queue.enqueue('traced'));
const value = await task.wait({ timeout: 20000 });
console.log(JSON.stringify({ traceparent, id: task.id, value }));
await queue.close();
"""


def test_a_trace_from_node_continues_in_python(url, queue_name, r, start_worker, spans) -> None:  # type: ignore[no-untyped-def]
    node = shutil.which("node")
    needed = [NODE_CLIENT / "dist" / "esm" / "index.js",
              NODE_CLIENT / "node_modules" / "@opentelemetry" / "context-async-hooks"]  # fmt: skip
    if node is None or not all(path.exists() for path in needed):
        pytest.skip("needs node and a built node-client with its devDependencies (npm ci, build)")
    start_worker(traced_registry(), pool="thread")
    run = subprocess.run(
        [node, "--input-type=module", "--eval", node_script()],
        check=False, cwd=NODE_CLIENT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "DOTHIS_URL": url, "DOTHIS_QUEUE": queue_name},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout.strip().splitlines()[-1])
    _, trace_id, parent_id, _ = out["traceparent"].split("-")
    fields = r.hgetall(Keys(queue_name).task(out["id"]))
    assert fields[b"traceparent"].decode() == out["traceparent"]
    assert fields[b"tracestate"] == b"node=1"
    assert out["value"]["trace_id"] == trace_id  # the Python function ran inside the Node trace
    [consumer] = consumer_spans(spans)
    assert consumer.parent is not None
    assert f"{consumer.parent.trace_id:032x}" == trace_id
    assert f"{consumer.parent.span_id:016x}" == parent_id
    assert consumer.context.trace_state.get("node") == "1"
