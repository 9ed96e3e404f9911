// Integration: the task carries the W3C trace context of the span active at enqueue (SPEC.md 3.1
// traceparent, tracestate), read back raw from a real redis-server.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';

import { context, defaultTextMapGetter, ROOT_CONTEXT, trace, TraceFlags } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';

import { Queue } from '../dist/esm/index.js';
import { startRedis, uniqueQueue } from './support/redis.mjs';

const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;
let redis;
before(async () => { redis = await startRedis(); });
after(async () => { await redis?.stop(); });

async function withQueue(run) {
  const queue = new Queue(uniqueQueue('trace'), { url: redis.url });
  try {
    return await run(queue);
  } finally {
    await queue.close();
  }
}

/** A context whose active span is a remote parent made up here, as a propagator extracts it. */
function remote({ sampled = true, tracestate } = {}) {
  const traceparent = `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-${sampled ? '01' : '00'}`;
  const carrier = tracestate === undefined ? { traceparent } : { traceparent, tracestate };
  return { traceparent, ctx: new W3CTraceContextPropagator().extract(ROOT_CONTEXT, carrier, defaultTextMapGetter) };
}

const traceFieldsOf = async (task) => {
  const hash = await redis.raw.hgetall(task.key);
  return Object.fromEntries(Object.entries(hash).filter(([name]) => name.startsWith('trace')));
};

describe('without a context manager (no SDK)', () => {
  test('nothing is active, so nothing is written', () => withQueue(async (queue) => {
    const { ctx } = remote();
    const task = await context.with(ctx, () => queue.enqueue('echo', { text: 'hi' }));
    assert.deepEqual(await traceFieldsOf(task), {});
  }));
});

describe('with a context manager', () => {
  before(() => { context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable()); });
  after(() => { context.disable(); });

  test('the first enqueue of a queue carries the active span context across its clock check', () => withQueue(async (queue) => {
    const { traceparent, ctx } = remote();
    const task = await context.with(ctx, () => queue.enqueue('echo', { text: 'hi' }));
    assert.deepEqual(await traceFieldsOf(task), { traceparent });
    const again = await context.with(ctx, () => queue.enqueue('echo', { text: 'again' }));
    assert.deepEqual(await traceFieldsOf(again), { traceparent });
  }));

  test('tracestate and the flags travel as they are', () => withQueue(async (queue) => {
    const { traceparent, ctx } = remote({ sampled: false, tracestate: 'vendor=abc,other=1' });
    assert.match(traceparent, TRACEPARENT);
    const task = await context.with(ctx, () => queue.enqueue('echo', {}));
    assert.deepEqual(await traceFieldsOf(task), { traceparent, tracestate: 'vendor=abc,other=1' });
  }));

  test('a span set in the context by hand is the active span too', () => withQueue(async (queue) => {
    const spanContext = { traceId: randomBytes(16).toString('hex'), spanId: randomBytes(8).toString('hex'), traceFlags: TraceFlags.SAMPLED };
    const ctx = trace.setSpanContext(context.active(), spanContext);
    const task = await context.with(ctx, () => queue.enqueue('echo', {}));
    assert.deepEqual(await traceFieldsOf(task), { traceparent: `00-${spanContext.traceId}-${spanContext.spanId}-01` });
  }));

  test('every task of enqueueMany carries it', () => withQueue(async (queue) => {
    const { traceparent, ctx } = remote();
    const tasks = await context.with(ctx, () => queue.enqueueMany([{ fn: 'echo', args: { text: 'a' } }, { fn: 'echo' }]));
    for (const task of tasks) assert.deepEqual(await traceFieldsOf(task), { traceparent });
  }));

  test('outside a span, or with an invalid one, nothing is written', () => withQueue(async (queue) => {
    assert.deepEqual(await traceFieldsOf(await queue.enqueue('echo', {})), {});
    const invalid = trace.setSpanContext(ROOT_CONTEXT, { traceId: '0'.repeat(32), spanId: '0'.repeat(16), traceFlags: 1 });
    assert.deepEqual(await traceFieldsOf(await context.with(invalid, () => queue.enqueue('echo', {}))), {});
  }));
});
