"""The trace a task carries: its ``traceparent`` and ``tracestate`` fields (SPEC.md 3.1).

A task enqueued while an OpenTelemetry span is active carries that span's context, and the
worker continues the trace from it (``worker/tracing.py``). Outside a trace nothing is written.

The fields are W3C Trace Context by protocol, whatever propagator the application configured
(B3, say), so the W3C propagator writes them, not the global one. No span of its own: the fields
are built before the write and before the other tasks of an ``enqueue_many`` are checked, so such
a span could describe a task never written; the Node client does the same (src/tracing.ts).
OpenTelemetry is never imported here for its own sake: a span can be active only in a process
that imported ``opentelemetry.trace`` (every way of starting or attaching one goes through it), so
until it is loaded no trace is under way and nothing needs it (a ``dothis enqueue`` spares it).
"""

from __future__ import annotations

import functools
import sys
from types import ModuleType
from typing import TYPE_CHECKING

from dothis.wire.protocol import Field

if TYPE_CHECKING:
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

FIELDS = (Field.TRACEPARENT, Field.TRACESTATE)


def trace_fields() -> list[str]:
    """``[traceparent, <value>, tracestate, <value>]`` of the active span (each pair only when it
    has a value); empty outside a trace."""
    if "opentelemetry.trace" not in sys.modules:
        return []
    trace = _trace()  # (redis-py imports it when installed: the span then decides)
    span = trace.get_current_span()
    if span is trace.INVALID_SPAN or not span.get_span_context().is_valid:  # no active span
        return []
    carrier: dict[str, str] = {}
    _w3c().inject(carrier)
    return [item for name in FIELDS if (value := carrier.get(name)) for item in (name, value)]


@functools.cache
def _trace() -> ModuleType:
    """``opentelemetry.trace``, imported (once it is loaded) the first time only."""
    from opentelemetry import trace

    return trace


@functools.cache
def _w3c() -> TraceContextTextMapPropagator:
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator()
