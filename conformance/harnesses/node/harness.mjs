#!/usr/bin/env node
// Conformance harness for the Node implementation of dothis (node-client/dist; run `npm run build`
// there first). Reads one JSON request per line on stdin and writes one JSON response per line on
// stdout, in order (see conformance/README.md). Producer ops use the library's Queue; start_worker
// runs the real `dothis-worker` command line (node-client/dist/esm/worker/cli.js, the package's bin)
// as a separate OS process with the standard functions of ./functions.mjs, as a user would.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, mkdtempSync, openSync, writeSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

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
  throw new OpError('unsupported', `op ${JSON.stringify(request.op)} is not supported`);
};

const WORKER_CLI = fileURLToPath(new URL('../../../node-client/dist/esm/worker/cli.js', import.meta.url));
const FUNCTIONS = fileURLToPath(new URL('./functions.mjs', import.meta.url));
const WORKER_OPTIONS = ['worker_id', 'concurrency', 'lease_ms', 'heartbeat_ms', 'reap_ms', 'max_claims', 'max_value_bytes'];
const logDir = mkdtempSync(path.join(tmpdir(), 'dothis-node-harness-'));
/** handle -> { child, exited (a promise of the exit code), log } */
const workers = new Map();
let started = 0;

/** SIGKILL to the worker and everything it started (it leads its own process group); resolves once it has exited. */
async function killGroup(worker) {
  try {
    process.kill(-worker.child.pid, 'SIGKILL');
  } catch {
    // already gone
  }
  await worker.exited;
}

function workerFor(request) {
  const worker = workers.get(request.worker);
  if (!worker) throw new OpError('unknown-worker', `no worker ${JSON.stringify(request.worker)}`);
  return worker;
}

function startWorker(request) {
  const argv = [WORKER_CLI, '--url', request.url, '--queue', request.queue];
  for (const name of WORKER_OPTIONS) {
    if (request[name] !== undefined && request[name] !== null) argv.push(`--${name.replaceAll('_', '-')}`, String(request[name]));
  }
  argv.push(FUNCTIONS);
  started += 1;
  const log = path.join(logDir, `worker-${started}-${request.worker_id ?? 'anon'}.log`);
  const fd = openSync(log, 'w');
  writeSync(fd, `$ ${[process.execPath, ...argv].join(' ')}\n`);
  const child = spawn(process.execPath, argv, { stdio: ['ignore', fd, fd], detached: true });
  closeSync(fd);
  const exited = once(child, 'exit').then(([code, signal]) => code ?? (signal ? -1 : null));
  const handle = `pid-${child.pid}`;
  workers.set(handle, { child, exited, log });
  return { worker: handle, pid: child.pid, log };
}

/** SIGTERM, as a supervisor sends it; waits for the exit (at most timeout_ms, default 9 s, then SIGKILL). */
async function stopWorker(request) {
  const worker = workerFor(request);
  workers.delete(request.worker);
  if (worker.child.exitCode === null && worker.child.signalCode === null) worker.child.kill('SIGTERM');
  let timer;
  const timeout = new Promise((resolve) => { timer = setTimeout(resolve, Number(request.timeout_ms ?? 9000), 'timeout'); });
  const code = await Promise.race([worker.exited, timeout]);
  clearTimeout(timer);
  await killGroup(worker); // reap anything it left behind
  if (code === 'timeout') throw new OpError('timeout', 'the worker did not exit within 9 s of SIGTERM; killed');
  return { exit_code: code };
}

async function killWorker(request) {
  const worker = workerFor(request);
  workers.delete(request.worker);
  await killGroup(worker);
  return {};
}

async function killAll() {
  const all = [...workers.values()];
  workers.clear();
  await Promise.all(all.map(killGroup));
}

const ops = {
  hello: () => ({ implementation: 'node', roles: ['producer', 'worker'], version: packageJson.version, fail_exception: 'Error' }),

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

  start_worker: startWorker,
  stop_worker: stopWorker,
  kill_worker: killWorker,

  shutdown: async () => {
    await Promise.all([closeAll(), killAll()]);
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
await Promise.all([closeAll(), killAll()]);
