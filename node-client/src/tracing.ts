/**
 * The trace a task carries: its `traceparent` and `tracestate` fields (SPEC.md 3.1), the context of
 * the OpenTelemetry span active when the task is enqueued. A worker that traces continues the trace
 * from it. Nothing is written outside a trace.
 *
 * The fields are W3C Trace Context by protocol, so they are formatted here from the active span
 * context, not through the registered propagator: the API's propagator is a no-op until an SDK
 * registers one, and may write another format (B3, Jaeger) when it does. Without a context manager
 * (no SDK) `context.active()` is always the empty root context: the cost is one lookup.
 *
 * No span of its own: `prepare()` also runs as a dry run before the first enqueue of a Queue, so a
 * span made there could describe a task never written; the task carries the caller's span context.
 */
import { context, isSpanContextValid, trace } from '@opentelemetry/api';

/** `[['traceparent', ...], ['tracestate', ...]]` for a task enqueued now; empty outside a trace. */
export function traceFields(): [string, string][] {
  const span = trace.getSpanContext(context.active());
  if (!span || !isSpanContextValid(span)) return [];
  const flags = (span.traceFlags & 0xff).toString(16).padStart(2, '0');
  const fields: [string, string][] = [['traceparent', `00-${span.traceId}-${span.spanId}-${flags}`]];
  const state = span.traceState?.serialize();
  if (state) fields.push(['tracestate', state]);
  return fields;
}
