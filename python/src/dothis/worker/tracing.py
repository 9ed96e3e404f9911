"""A CONSUMER span around every try, continuing the trace its task carries (SPEC.md 3.1).

``install(registry)`` makes ``consumer_span`` the outermost middleware of a registry: each try
runs inside a span ``process <queue>`` (OpenTelemetry messaging semantic conventions), a child
of the context in the task's ``traceparent`` and ``tracestate`` (the producer's span), or the
root of a new trace when the task carries none or a malformed one (never a reason to fail the
task). The span is current while the function runs, so the spans it makes are its children and
the context it propagates onwards is the task's. An exception, a ``Retry`` included, marks it
ERROR. It is entered where the function runs: the worker, a thread, or a child of the process
pool, which needs a tracer provider of its own to export (an ``on_startup`` hook can set one).

Without an OpenTelemetry SDK the API's tracer makes no span and only the task's context is made
current, which costs microseconds; a task that carries no trace, in a process where no tracer
provider is set, costs nothing at all (OpenTelemetry is not even imported).
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

from dothis.engine.context import NOTHING, TaskContext
from dothis.engine.registry import Registry
from dothis.version import __version__
from dothis.wire.protocol import Field

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Tracer
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

FIELDS = (Field.TRACEPARENT, Field.TRACESTATE)


def _untraced(task: TaskContext) -> bool:
    """Nothing to trace: the task carries no trace and no tracer provider is set (OpenTelemetry
    not even imported, or its global provider still the API's placeholder)."""
    if task.fields.get(Field.TRACEPARENT) is not None:
        return False
    trace = sys.modules.get("opentelemetry.trace")
    return trace is None or isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def consumer_span(task: TaskContext) -> contextlib.AbstractContextManager[None]:
    """Middleware: run the try inside a CONSUMER span ``process <queue>``, a child of the trace
    context the task carries (``NOTHING``, entered by no one, when there is nothing to trace)."""
    return NOTHING if _untraced(task) else _span(task)


@contextlib.contextmanager
def _span(task: TaskContext) -> Iterator[None]:
    from opentelemetry import trace

    with _tracer().start_as_current_span(
        f"process {task.queue}",
        context=parent_context(task),
        kind=trace.SpanKind.CONSUMER,
        attributes={
            "messaging.system": "dothis",
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": task.queue,
            "messaging.message.id": task.id,
            "messaging.client.id": task.worker_id,
            "dothis.function": task.function,
            "dothis.try_number": task.try_number,
        },
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield
        except BaseException as error:
            kind = type(error).__qualname__
            span.record_exception(error)
            span.set_attribute("error.type", kind)
            span.set_status(trace.Status(trace.StatusCode.ERROR, f"{kind}: {error}"))
            raise


def parent_context(task: TaskContext) -> Context:
    """The context the task's ``traceparent`` and ``tracestate`` describe; an empty one (a new
    trace) when they are absent or malformed."""
    from opentelemetry.context import Context

    carrier = {name: value for name in FIELDS if (value := task.fields.get(name)) is not None}
    return _w3c().extract(carrier, Context())


def install(registry: Registry) -> None:
    """Put ``consumer_span`` first in ``registry``'s middleware (outermost, so the spans of other
    middleware nest in it); once, however often it is called."""
    if consumer_span not in registry.middleware:
        registry.middleware.insert(0, consumer_span)


@functools.cache
def _tracer() -> Tracer:
    from opentelemetry import trace

    return trace.get_tracer("dothis", __version__)  # follows a provider set later


@functools.cache
def _w3c() -> TraceContextTextMapPropagator:
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator()
