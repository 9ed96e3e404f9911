#!/usr/bin/env node
// Conformance harness for the Node producer of dothis (node-client/dist; run `npm run build` there
// first). Reads one JSON request per line on stdin and writes one JSON response per line on
// stdout, in order (see conformance/README.md). Producer role only: worker ops answer "unsupported".
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';

import {
  DependencyError, DothisError, Queue, TaskFailedError, TaskNotFoundError, WaitTimeoutError,
} from '../../../node-client/dist/esm/index.js';

const out = process.stdout;
console.log = console.error; // anything printed must not corrupt the protocol stream
console.info = console.error;

const packageJson = JSON.parse(await readFile(new URL('../../../node-client/package.json', import.meta.url), 'utf8'));

class OpError extends Error {
  constructor(code, message, extra = {}) {
    super(message);
    this.body = { code, message, ...extra };
  }
}

const queues = new Map();

function queueFor(request) {
  const key = JSON.stringify([request.url, request.queue]);
  let queue = queues.get(key);
  if (!queue) {
    queue = new Queue(request.queue, { url: request.url });
    queues.set(key, queue);
  }
  return queue;
}

async function closeAll() {
  await Promise.allSettled([...queues.values()].map((queue) => queue.close()));
  queues.clear();
}

/**
 * The case's enqueue options, named as their hash fields (`at-front`, `depends-on`, `result-ttl`,
 * ...; conformance/README.md), as the client's camelCase options. `at` is ISO-8601 text. A name
 * the client does not know is passed on camelCased, so the client refuses it (invalid-arguments).
 */
function enqueueOptions(request) {
  const options = {};
  if (request.id !== undefined && request.id !== null) options.id = request.id;
  for (const [name, value] of Object.entries(request.options ?? {})) {
    const camel = name.replace(/-([a-z])/g, (_, letter) => letter.toUpperCase());
    options[camel] = camel === 'at' && typeof value === 'string' ? new Date(value) : value;
  }
  return options;
}

let openTelemetry;

/**
 * Runs `enqueue` with the request's W3C trace context (`traceparent`, `tracestate`) as the active
 * context: extracted by OpenTelemetry's W3C propagator, made active by its AsyncLocalStorage context
 * manager (node-client's devDependencies, loaded on first use). The client reads the active context.
 */
function inTraceContext(request, enqueue) {
  if (!openTelemetry) {
    const require = createRequire(new URL('../../../node-client/package.json', import.meta.url));
    const api = require('@opentelemetry/api');
    const { AsyncLocalStorageContextManager } = require('@opentelemetry/context-async-hooks');
    const { W3CTraceContextPropagator } = require('@opentelemetry/core');
    api.context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    openTelemetry = { api, propagator: new W3CTraceContextPropagator() };
  }
  const { api, propagator } = openTelemetry;
  const carrier = { traceparent: request.traceparent, ...(request.tracestate ? { tracestate: request.tracestate } : {}) };
  return api.context.with(propagator.extract(api.ROOT_CONTEXT, carrier, api.defaultTextMapGetter), enqueue);
}

const unsupported = (request) => {
  throw new OpError('unsupported', `op ${JSON.stringify(request.op)} is not supported: the Node client is a producer only`);
};

const ops = {
  hello: () => ({ implementation: 'node', roles: ['producer'], version: packageJson.version }),

  enqueue: async (request) => {
    const enqueue = () => queueFor(request).enqueue(request.function, request.args ?? {}, enqueueOptions(request));
    const task = await (request.traceparent ? inTraceContext(request, enqueue) : enqueue());
    return { task_id: task.id };
  },

  enqueue_many: async (request) => {
    const specs = request.tasks.map((spec) => ({ fn: spec.function, args: spec.args ?? {}, ...enqueueOptions(spec) }));
    const tasks = await queueFor(request).enqueueMany(specs);
    return { task_ids: tasks.map((task) => task.id) };
  },

  fetch: async (request) => {
    const task = await queueFor(request).getTask(request.id);
    const info = task && await task.info();
    if (!info) return { task: null };
    return {
      task: {
        id: info.id,
        state: info.state,
        outcome: info.outcome,
        value: info.outcome === 'successful' ? info.value : null,
        error_code: info.error?.code ?? null,
        error_reason: info.error?.reason ?? null,
      },
    };
  },

  length: async (request) => ({ length: await queueFor(request).length() }),

  cancel: async (request) => {
    try {
      return { result: await queueFor(request).task(request.id).cancel() };
    } catch (error) {
      if (error instanceof TaskNotFoundError) throw new OpError('not-found', error.message);
      throw error;
    }
  },

  wait: async (request) => {
    const queue = queueFor(request);
    const task = await queue.getTask(request.id);
    if (!task) throw new OpError('not-found', `no task ${JSON.stringify(request.id)} in queue ${JSON.stringify(request.queue)}`);
    return { value: await task.wait({ timeout: request.timeout_ms }) };
  },

  start_worker: unsupported,
  stop_worker: unsupported,
  kill_worker: unsupported,

  shutdown: async () => {
    await closeAll();
    return {};
  },
};

function errorBody(error) {
  if (error instanceof OpError) return error.body;
  if (error instanceof TaskFailedError) {
    return { code: error.code, message: error.message, reason: error.reason, exception: error.exception };
  }
  if (error instanceof WaitTimeoutError) return { code: 'timeout', message: error.message };
  if (error instanceof DependencyError) return { code: 'dependency-error', message: error.message };
  if (error instanceof DothisError) return { code: error.code, message: error.message };
  return { code: 'internal', message: String(error?.message ?? error), exception: error?.stack ?? '' };
}

async function answer(line) {
  let seq = null;
  let request;
  let body;
  try {
    request = JSON.parse(line);
    seq = request?.seq ?? null;
    const op = Object.hasOwn(ops, request?.op) ? ops[request.op] : unsupported;
    body = { seq, ok: true, ...await op(request) };
  } catch (error) {
    body = { seq, ok: false, error: errorBody(error) };
  }
  out.write(`${JSON.stringify(body)}\n`);
  return body.ok && request?.op === 'shutdown';
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (!line.trim()) continue;
  if (await answer(line)) process.exit(0);
}
await closeAll();
