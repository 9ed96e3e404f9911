// The Node worker: `dothis-worker` as a real process (thread pool) against a private redis-server,
// fed by the Node producer and by the Python one; recovery after SIGKILL, SIGTERM drains; the
// in-process Worker (inline pool); and the pure parts (strict JSON, parameters, encoding, options).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

import { InvalidArgumentsError, Queue, Retry, TaskFailedError, Worker, withParams } from '../dist/esm/index.js';
import { encodeValue } from '../dist/esm/worker/callable.js';
import { parseStrict } from '../dist/esm/worker/json.js';
import { argumentsProblem } from '../dist/esm/worker/registry.js';
import { VERSION } from '../dist/esm/worker/version.js';
import { findPython, runPython, spawnWorker, startRedis, uniqueQueue, until } from './support/redis.mjs';

const python = await findPython();
const CLI = fileURLToPath(new URL('../dist/esm/worker/cli.js', import.meta.url));

// The functions of the worker processes: the module a user passes to dothis-worker.
const FUNCTIONS = `
export function echo({ text }) { return text; }
echo.params = ['text'];
export async function sleep({ seconds }) { await new Promise((r) => setTimeout(r, seconds * 1000)); return seconds; }
sleep.params = ['seconds'];
export function spin({ ms }) { const end = Date.now() + ms; while (Date.now() < end) { /* never yields */ } return 'done'; }
spin.params = ['ms'];
export function flaky({ until }, ctx) { if (ctx.tryNumber < until) throw new Error('try ' + ctx.tryNumber + ' fails'); return ctx.tryNumber; }
flaky.params = ['until'];
export function crash() { process.exit(3); }
`;

let dir;
let functionsFile;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'dothis-worker-test-'));
  functionsFile = path.join(dir, 'functions.mjs');
  await writeFile(functionsFile, FUNCTIONS);
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Starts `dothis-worker` as a user would (spawnWorker: stop, kill and log). */
function startNodeWorker(url, queue, extra = []) {
  return spawnWorker(process.execPath, [CLI, '--url', url, '--queue', queue, ...extra, functionsFile]);
}

const workerKeys = (raw, queue) => raw.zrange(`${queue}:workers`, 0, -1);

describe('dothis-worker, fed by the Node producer', () => {
  let redis;
  let queue;
  let worker;

  before(async () => {
    redis = await startRedis();
    queue = new Queue(uniqueQueue('nw'), { url: redis.url });
    worker = startNodeWorker(redis.url, queue.name, ['--concurrency', '2', '--worker-id', `w-${process.pid}`]);
    await until(async () => (await workerKeys(redis.raw, queue.name)).length === 1, { ms: 10000, what: 'the worker to register' });
  });

  after(async () => {
    await queue?.close();
    const code = await worker?.stop();
    const left = await redis.raw.exists(`${queue.name}:worker:w-${process.pid}`);
    await redis?.stop();
    assert.equal(code, 0, `worker exit code ${code}\n${worker?.log()}`);
    assert.equal(left, 0, 'the worker deleted its key');
  });

  test('round trip: the value comes back, the hash is finished by this worker', async () => {
    const task = await queue.enqueue('echo', { text: { nested: ['ünï', 1.5, null] } });
    assert.deepEqual(await task.wait({ timeout: 10000 }), { nested: ['ünï', 1.5, null] }, worker.log());
    const info = await task.info();
    assert.equal(info.worker, `w-${process.pid}`);
    assert.equal(info.claims, 1);
    const key = await redis.raw.hgetall(`${queue.name}:worker:w-${process.pid}`);
    assert.equal(key.language, 'node');
    assert.equal(key.leases, 'task');
    assert.deepEqual(JSON.parse(key.functions).sort(), ['crash', 'echo', 'flaky', 'sleep', 'spin']);
  });

  test('a try past its timeout is stopped (even code that never yields) and fails with timeout', async () => {
    const started = Date.now();
    const task = await queue.enqueue('spin', { ms: 60000 }, { timeout: 0.5 });
    await assert.rejects(task.wait({ timeout: 10000 }), { name: 'TaskFailedError', code: 'timeout' });
    assert.ok(Date.now() - started < 5000, `took ${Date.now() - started} ms`);
    assert.equal(await (await queue.enqueue('echo', { text: 'next' })).wait({ timeout: 10000 }), 'next');
  });

  test('a failed try is retried with backoff, then succeeds', async () => {
    const task = await queue.enqueue('flaky', { until: 2 }, { attempts: 3 });
    assert.equal(await task.wait({ timeout: 10000 }), 2, worker.log());
    const info = await task.info();
    assert.equal(info.retries, 1);
    assert.equal(info.claims, 2);
    assert.equal(info.fields['error-code'], 'exception'); // the error fields describe the try that failed
  });

  test('a try whose thread dies fails with crashed; the worker goes on', async () => {
    const task = await queue.enqueue('crash', {});
    await assert.rejects(task.wait({ timeout: 10000 }), { name: 'TaskFailedError', code: 'crashed' });
    assert.equal(await (await queue.enqueue('echo', { text: 'alive' })).wait({ timeout: 10000 }), 'alive');
  });

  test('bad input ends with its error code', async () => {
    const cases = [
      [await queue.enqueue('nope', {}), 'unknown-function'],
      [await queue.enqueue('echo', { wrong: 1 }), 'bad-arguments'],
      [await queue.enqueue('echo', {}), 'bad-arguments'],
    ];
    for (const [task, code] of cases) await assert.rejects(task.wait({ timeout: 10000 }), { name: 'TaskFailedError', code });
    const key = `${queue.name}:task:raw-dup`;
    await redis.raw.hset(key, 'function', 'echo', 'args', '{"text": 1, "text": 2}');
    await redis.raw.lpush(`${queue.name}:pending`, 'raw-dup');
    await until(async () => (await redis.raw.hget(key, 'error-code')) === 'malformed-args', { what: 'malformed-args' });
  });

  test('Python enqueues, the Node worker runs it', { skip: python ? false : 'no Python with dothis (set DOTHIS_PYTHON)' }, async () => {
    const out = await runPython(python, [
      'import json, os',
      'from dothis import Queue',
      'q = Queue(os.environ["Q"], url=os.environ["URL"])',
      't = q.enqueue("echo", text={"from": "python", "big": 9007199254740993})',
      'print(json.dumps(t.wait(timeout=20)))',
      'q.close()',
    ].join('\n'), { Q: queue.name, URL: redis.url });
    assert.equal(out.trim(), '{"from": "python", "big": 9007199254740993}');
  });
});

describe('recovery and shutdown of worker processes', () => {
  let redis;

  before(async () => { redis = await startRedis(); });
  after(async () => { await redis?.stop(); });

  const fast = ['--lease-ms', '1000', '--heartbeat-ms', '250', '--reap-ms', '250'];

  test('a SIGKILLed worker\'s task is recovered by another worker and runs again', async () => {
    const name = uniqueQueue('kill');
    const queue = new Queue(name, { url: redis.url });
    const a = startNodeWorker(redis.url, name, [...fast, '--worker-id', 'A']);
    try {
      const task = await queue.enqueue('sleep', { seconds: 1 });
      await until(async () => (await task.info())?.worker === 'A', { ms: 10000, what: 'A to start the task' });
      await a.kill();
      const c = startNodeWorker(redis.url, name, [...fast, '--worker-id', 'C']);
      assert.equal(await task.wait({ timeout: 15000 }), 1, c.log());
      const info = await task.info();
      assert.equal(info.worker, 'C');
      assert.equal(info.claims, 2);
      assert.equal(info.losses, 1);
      assert.equal(await c.stop(), 0);
    } finally {
      await queue.close();
      await a.kill();
    }
  });

  test('SIGTERM lets the running task finish, deletes the key, exits 0', async () => {
    const name = uniqueQueue('term');
    const queue = new Queue(name, { url: redis.url });
    const worker = startNodeWorker(redis.url, name, ['--worker-id', 'T']);
    try {
      const task = await queue.enqueue('sleep', { seconds: 1 });
      await until(async () => (await task.state()) === 'executing', { ms: 10000, what: 'the task to start' });
      assert.equal(await worker.stop(), 0, worker.log());
      assert.deepEqual(await task.result(), { outcome: 'successful', value: 1 });
      assert.equal(await redis.raw.exists(`${name}:worker:T`, `${name}:executing`), 0);
      assert.deepEqual(await workerKeys(redis.raw, name), []);
    } finally {
      await queue.close();
    }
  });

  test('past the grace period the running task goes back to pending, not counted as a loss', async () => {
    const name = uniqueQueue('grace');
    const queue = new Queue(name, { url: redis.url });
    const worker = startNodeWorker(redis.url, name, ['--grace-ms', '300']);
    try {
      const task = await queue.enqueue('sleep', { seconds: 30 });
      await until(async () => (await task.state()) === 'executing', { ms: 10000, what: 'the task to start' });
      assert.equal(await worker.stop(), 0, worker.log());
      const info = await task.info();
      assert.equal(info.state, 'pending');
      assert.equal(info.losses, 0); // recover.lua with max-claims 0: a deliberate stop is not a loss
      assert.deepEqual(await redis.raw.lrange(`${name}:pending`, 0, -1), [task.id]);
      assert.equal(await redis.raw.exists(`${name}:executing`), 0);
    } finally {
      await queue.close();
    }
  });
});

describe('new Worker(queue, { functions }): the inline pool, in process', () => {
  let redis;
  let queue;
  let worker;
  let running;
  const seen = { aborted: false };

  before(async () => {
    redis = await startRedis();
    queue = new Queue(uniqueQueue('inline'), { url: redis.url });
    const functions = {
      add: withParams(['a', 'b'], ({ a, b }) => a + b),
      steps: withParams(['n'], async ({ n }, ctx) => {
        for (let i = 1; i <= n; i += 1) await ctx.progress(i / n, `step ${i}`);
        return ctx.tryNumber;
      }),
      wait: async (_args, ctx) => {
        await new Promise((resolve) => { ctx.signal.addEventListener('abort', resolve); });
        seen.aborted = true;
      },
      later: (_args, ctx) => { if (ctx.tryNumber === 1) throw new Retry('not yet', { delayMs: 50 }); return 'now'; },
      nan: () => Number.NaN,
    };
    worker = new Worker(queue.name, { url: redis.url, functions, concurrency: 3, log: () => undefined, reapMs: 200 });
    running = worker.run();
  });

  after(async () => {
    await worker.stop({ graceMs: 1000 });
    await running;
    await queue.close();
    await redis.stop();
  });

  test('runs a function, reports progress, retries on Retry, refuses a value with no JSON form', async () => {
    assert.equal(await (await queue.enqueue('add', { a: 2, b: 40 })).wait({ timeout: 10000 }), 42);
    const steps = await queue.enqueue('steps', { n: 2 });
    assert.equal(await steps.wait({ timeout: 10000 }), 1);
    assert.deepEqual(await steps.progress(), { fraction: 1, message: 'step 2', updated: (await steps.info()).progress.updated });
    assert.equal(await (await queue.enqueue('later', {}, { attempts: 2 })).wait({ timeout: 10000 }), 'now');
    await assert.rejects((await queue.enqueue('nan', {})).wait({ timeout: 10000 }), { code: 'unserializable-result' });
  });

  test('a cancel while it runs stops the try: cancelled, and its signal aborts', async () => {
    const task = await queue.enqueue('wait', {});
    await until(async () => (await task.state()) === 'executing', { what: 'the task to start' });
    assert.equal(await task.cancel(), 'requested');
    await assert.rejects(task.wait({ timeout: 10000 }), (error) => error instanceof TaskFailedError && error.code === 'cancelled');
    await until(() => seen.aborted, { what: 'the abort signal' });
  });

  test('a callback task is enqueued and run when a task succeeds', async () => {
    const task = await queue.enqueue('add', { a: 1, b: 1 }, { onSuccess: 'add' });
    assert.equal(await task.wait({ timeout: 10000 }), 2);
    const callback = await until(async () => (await redis.raw.zrange(`${queue.name}:failed`, 0, -1)).find((id) => id.startsWith('cb-')),
      { what: 'the callback to run and fail (add has no id, outcome, value or error parameter)' });
    assert.match(callback, /^cb-[0-9a-f]{40}$/);
    const fields = await redis.raw.hgetall(`${queue.name}:task:${callback}`);
    assert.equal(fields['error-code'], 'bad-arguments');
    assert.equal(fields['callback-of'], task.id);
    assert.deepEqual(JSON.parse(fields.args), { id: task.id, outcome: 'successful', value: 2, error: null });
  });
});

describe('several queues, in priority order (SPEC.md 9.7)', () => {
  test('a task of a higher queue starts before any waiting task of a lower one', async () => {
    const redis = await startRedis();
    const [high, low] = [new Queue(uniqueQueue('high'), { url: redis.url }), new Queue(uniqueQueue('low'), { url: redis.url })];
    const order = [];
    const worker = new Worker([high.name, low.name], {
      url: redis.url, log: () => undefined, functions: { note: withParams(['tag'], ({ tag }) => { order.push(tag); return tag; }) },
    });
    try {
      const tasks = [await low.enqueue('note', { tag: 'low-1' }), await low.enqueue('note', { tag: 'low-2' }), await high.enqueue('note', { tag: 'high' })];
      const running = worker.run();
      await Promise.all(tasks.map((task) => task.wait({ timeout: 10000 })));
      assert.deepEqual(order, ['high', 'low-1', 'low-2']);
      assert.deepEqual(JSON.parse(await redis.raw.hget(`${low.name}:worker:${worker.id}`, 'queues')), [high.name, low.name]);
      await worker.stop();
      await running;
    } finally {
      await worker.stop();
      await Promise.all([high.close(), low.close()]);
      await redis.stop();
    }
  });
});

describe('the parts without Redis', () => {
  test('strict JSON: duplicates, depth, long integers, BOM and non-finite numbers are refused', () => {
    assert.deepEqual(parseStrict(' {"a": [1, -2.5e3, true, null, "x\\u00e9\\n"]} '), { a: [1, -2500, true, null, 'xé\n'] });
    assert.equal(parseStrict('9007199254740993'), 9007199254740993n);
    assert.equal(parseStrict('9007199254740991'), 9007199254740991);
    assert.equal(Object.hasOwn(parseStrict('{"__proto__": 1}'), '__proto__'), true);
    for (const bad of ['{"a": 1, "a": 2}', `${'['.repeat(65)}${']'.repeat(65)}`, '7'.repeat(4301), '\ufeff{}', 'NaN',
      '{"a": Infinity}', '1e400', '{"a": 1,}', '"\u0001"', '', '{} x']) {
      assert.throws(() => parseStrict(bad), { name: 'StrictJsonError' }, bad.slice(0, 40));
    }
    assert.deepEqual(parseStrict(`${'['.repeat(64)}${']'.repeat(64)}`).length, 1);
  });

  test('params: required, optional (name?) and any other (...)', () => {
    const info = { name: 'f', params: ['a', 'b?'] };
    assert.equal(argumentsProblem(info, { a: 1 }), null);
    assert.equal(argumentsProblem(info, { a: 1, b: 2 }), null);
    assert.match(argumentsProblem(info, { b: 2 }), /missing "a"/);
    assert.match(argumentsProblem(info, { a: 1, c: 3 }), /unexpected "c"/);
    assert.equal(argumentsProblem({ name: 'g', params: ['a', '...'] }, { a: 1, z: 0 }), null);
    assert.equal(argumentsProblem({ name: 'h', params: null }, { anything: 1 }), null);
  });

  test('return values: strict JSON or unserializable', () => {
    assert.deepEqual(encodeValue({ a: [1, undefined], b: undefined, c: 10n ** 20n }, 64), { kind: 'returned', json: '{"a":[1,null],"c":100000000000000000000}' });
    assert.deepEqual(encodeValue(undefined, 64), { kind: 'returned', json: 'null' });
    for (const bad of [Number.NaN, Infinity, new Date(), new Map(), () => 1, Symbol('s')]) {
      assert.equal(encodeValue({ v: bad }, 64).kind, 'unserializable', String(bad));
    }
    const cycle = {};
    cycle.self = cycle;
    assert.equal(encodeValue(cycle, 64).kind, 'unserializable');
  });

  test('options are checked when the Worker is made', () => {
    const fn = { f: () => 1 };
    assert.throws(() => new Worker('q', { functions: fn, leaseMs: 1000, heartbeatMs: 1000 }), { name: 'InvalidArgumentsError', field: 'heartbeatMs' });
    assert.throws(() => new Worker('q', { functions: fn, module: 'x.mjs' }), InvalidArgumentsError);
    assert.throws(() => new Worker('q', { functions: fn, pool: 'thread' }), { field: 'pool' });
    assert.throws(() => new Worker('bad queue', { functions: fn }), InvalidArgumentsError);
    assert.throws(() => new Worker('q', { functions: { f: Object.assign(() => 1, { params: 'a' }) } }), { field: 'functions.f.params' });
    assert.equal(new Worker(['high', 'low'], { functions: fn, workerId: 'me' }).id, 'me');
  });

  test('the worker key\'s version is package.json\'s; the CLI prints its help and refuses bad usage', async () => {
    const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8'));
    assert.equal(VERSION, pkg.version);
    assert.equal(pkg.bin['dothis-worker'], './dist/esm/worker/cli.js');
    const run = async (args) => {
      const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      child.stdout.on('data', (chunk) => { output += chunk; });
      child.stderr.on('data', (chunk) => { output += chunk; });
      const [code] = await once(child, 'exit');
      return { code, output };
    };
    const help = await run(['--help']);
    assert.equal(help.code, 0);
    assert.match(help.output, /usage: dothis-worker/);
    const usage = await run(['--concurrency', 'x', 'm.mjs']);
    assert.equal(usage.code, 2);
    assert.match(usage.output, /--concurrency must be a number/);
  });
});
