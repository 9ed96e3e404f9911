// Acceptance: the Node producer with a real Python worker process, and tasks crossing both ways.
// The interpreter is $DOTHIS_PYTHON (default ../.venv/bin/python); these tests skip only when it is missing.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';

import { Queue, TaskFailedError } from '../dist/esm/index.js';
import { findPython, runPython, startRedis, startWorker, uniqueQueue, until } from './support/redis.mjs';

const python = await findPython();
const skip = python ? false
  : `no Python interpreter with dothis: set DOTHIS_PYTHON or create ../.venv (tried ${process.env.DOTHIS_PYTHON || '../.venv/bin/python'})`;
const STAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;

describe('Node producer, Python worker', { skip }, () => {
  let redis;
  let worker;
  let queue;

  before(async () => {
    redis = await startRedis();
    queue = new Queue(uniqueQueue('cross'), { url: redis.url });
    worker = startWorker(python, redis.url, queue.name, ['--concurrency', '4']);
  });

  after(async () => {
    await queue?.close();
    const code = await worker?.stop();
    await redis?.stop();
    assert.equal(code, 0, `worker exit code ${code}\n${worker?.log()}`);
  });

  test('echo comes back through the results channel', async () => {
    const task = await queue.enqueue('echo', { text: 'ooh yeeah' });
    assert.equal(await task.wait({ timeout: 20000 }), 'ooh yeeah', worker.log());
    const info = await task.info();
    assert.equal(info.state, 'finished');
    assert.equal(info.outcome, 'successful');
    assert.equal(info.claims, 1);
    assert.match(info.executingCreated, STAMP);
    assert.match(info.finishedCreated, STAMP);
    assert.ok(info.pendingCreated <= info.executingCreated && info.executingCreated <= info.finishedCreated);
  });

  test('progress reported by a Python task: read, waited for, kept after the end', async () => {
    const task = await queue.enqueue('report_progress', { fractions: [0.3, 1], seconds: 0.3 });
    const first = await task.waitProgress({ timeout: 20000 });
    assert.ok([0.3, 1].includes(first.fraction), JSON.stringify(first));
    assert.match(first.updated, STAMP);
    assert.equal(await task.wait({ timeout: 20000 }), 2, worker.log());
    assert.deepEqual(await task.progress(), { fraction: 1, message: 'step 2', updated: (await task.info()).progress.updated });
    await assert.rejects(task.waitProgress({ timeout: 200 }), (error) => error.code === 'wait-timeout' && /no progress/.test(error.message));
  });

  test('values of every JSON type round-trip', async () => {
    const values = [null, 0, false, '', 'ünï😀', [1, [2, { a: null }]], { nested: { deep: true } }, 1.5, -7];
    const tasks = await queue.enqueueMany(values.map((text) => ({ fn: 'echo', args: { text } })));
    assert.deepEqual(await Promise.all(tasks.map((task) => task.wait({ timeout: 20000 }))), values);
    assert.equal(await (await queue.enqueue('add', { a: 2, b: 40 })).wait({ timeout: 20000 }), 42);
  });

  test('a raised exception rejects with TaskFailedError', async () => {
    const task = await queue.enqueue('fail', { message: 'boom' });
    await assert.rejects(task.wait({ timeout: 20000 }), (error) => {
      assert.ok(error instanceof TaskFailedError);
      assert.equal(error.code, 'exception');
      assert.match(error.reason, /boom/);
      assert.match(error.exception, /RuntimeError/);
      return true;
    });
  });

  test('bad input ends as a documented error code', async () => {
    const cases = [
      [await queue.enqueue('no_such_function', {}), 'unknown-function'],
      [await queue.enqueue('echo', { wrong: 1 }), 'bad-arguments'],
    ];
    for (const [task, code] of cases) {
      await assert.rejects(task.wait({ timeout: 20000 }), { name: 'TaskFailedError', code });
    }
  });

  test('a few hundred concurrent waits on one subscription', async () => {
    const tasks = await queue.enqueueMany(Array.from({ length: 300 }, (_, i) => ({ fn: 'add', args: { a: i, b: i } })));
    const values = await Promise.all(tasks.map((task) => task.wait({ timeout: 30000 })));
    assert.deepEqual(values, tasks.map((_, i) => 2 * i));
    const [, subscribers] = await redis.raw.pubsub('NUMSUB', `${queue.name}:results`);
    assert.equal(Number(subscribers), 1);
  });

  test('Python enqueues, Node reads the outcome', async () => {
    const out = await runPython(python, [
      'import json, os',
      'from dothis import Queue',
      'q = Queue(os.environ["Q"], url=os.environ["URL"])',
      'a = q.enqueue("echo", text="from python")',
      'b = q.enqueue_call("fail", {"message": "python boom"}, task_id="py-fail-1")',
      'print(json.dumps([a.id, b.id]))',
      'q.close()',
    ].join('\n'), { Q: queue.name, URL: redis.url });
    const [echoId, failId] = JSON.parse(out);
    const echo = await queue.getTask(echoId);
    assert.ok(echo, 'the hash Python wrote exists');
    assert.equal(await echo.wait({ timeout: 20000 }), 'from python');
    const info = await echo.info();
    assert.equal(info.function, 'echo');
    assert.deepEqual(JSON.parse(info.args), { text: 'from python' });
    assert.match(info.pendingCreated, STAMP);
    assert.equal(failId, 'py-fail-1');
    await assert.rejects((await queue.getTask(failId)).wait({ timeout: 20000 }), { code: 'exception', reason: 'python boom' });
    assert.deepEqual(await (await queue.getTask(failId)).result(),
      { outcome: 'failed', code: 'exception', reason: 'python boom', exception: (await redis.raw.hget(`${queue.name}:task:py-fail-1`, 'error-exception')) });
  });

  test('Node enqueues, Python waits for the result', async () => {
    const task = await queue.enqueue('echo', { text: { from: 'node', n: [1, 2] } }, { id: 'node:1' });
    const out = await runPython(python, [
      'import json, os',
      'from dothis import Queue',
      'q = Queue(os.environ["Q"], url=os.environ["URL"])',
      't = q.fetch("node:1")',
      'print(json.dumps(t.wait(timeout=20)))',
      'q.close()',
    ].join('\n'), { Q: queue.name, URL: redis.url });
    assert.deepEqual(JSON.parse(out), { from: 'node', n: [1, 2] });
    assert.equal(await task.state(), 'finished');
  });
});

describe('the README quick start', { skip }, () => {
  test('prints "ooh yeeah" from a Python worker, as ESM and as CommonJS', async () => {
    const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8');
    const example = /## Quick start[\s\S]*?```js\n([\s\S]*?)```/.exec(readme)?.[1];
    assert.ok(example, 'the README has a js example under Quick start');
    assert.ok(example.includes("new Queue('dothis')"));
    const redis = await startRedis();
    const worker = startWorker(python, redis.url, 'dothis');
    const run = async (args) => {
      const child = spawn(process.execPath, args, {
        cwd: new URL('..', import.meta.url), env: { ...process.env, DOTHIS_REDIS_URL: redis.url }, stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout.on('data', (chunk) => { output += chunk; });
      child.stderr.on('data', (chunk) => { output += chunk; });
      const [code] = await once(child, 'exit');
      return { code, output };
    };
    try {
      assert.deepEqual(await run(['--input-type=module', '-e', example]), { code: 0, output: 'ooh yeeah\n' });
      const commonjs = "const { Queue } = require('dothis'); const q = new Queue('dothis');" +
        " q.enqueue('echo', { text: 'from require' }).then((t) => t.wait({ timeout: 10000 })).then(console.log).finally(() => q.close());";
      assert.deepEqual(await run(['-e', commonjs]), { code: 0, output: 'from require\n' });
    } finally {
      await worker.stop();
      await redis.stop();
    }
  });
});

/** Microseconds since the epoch of a protocol timestamp. */
const micros = (stamp) => BigInt(Date.parse(`${stamp.slice(0, 19)}Z`)) * 1000n + BigInt(stamp.slice(20, 26));

describe('Node producer options, Python worker', { skip }, () => {
  let redis;
  let worker;
  let queue;

  before(async () => {
    redis = await startRedis();
    queue = new Queue(uniqueQueue('cross-opts'), { url: redis.url });
    worker = startWorker(python, redis.url, queue.name, ['--concurrency', '4']);
  });

  after(async () => {
    await queue?.close();
    const code = await worker?.stop();
    await redis?.stop();
    assert.equal(code, 0, `worker exit code ${code}\n${worker?.log()}`);
  });

  test('a task with dependsOn runs after its parent succeeded', async () => {
    const parent = await queue.enqueue('sleep', { seconds: 0.5 });
    const child = await queue.enqueue('add', { a: 1, b: 2 }, { dependsOn: parent });
    assert.equal(await redis.raw.hget(child.key, 'state'), 'waiting');
    assert.equal(await child.wait({ timeout: 20000 }), 3, worker.log());
    const [p, c] = [await parent.info(), await child.info()];
    assert.equal(p.outcome, 'successful');
    assert.ok(micros(c.executingCreated) >= micros(p.finishedCreated), `${c.executingCreated} < ${p.finishedCreated}`);
    assert.deepEqual(c.dependsOn, [parent.id]);
    assert.ok(p.timeTaken >= 0.5 && p.timeTaken < 10, String(p.timeTaken));
  });

  test('a task with delay: 1 runs after about a second', async () => {
    const task = await queue.enqueue('echo', { text: 'later' }, { delay: 1 });
    assert.equal(await redis.raw.hget(task.key, 'state'), 'scheduled');
    assert.equal(await task.wait({ timeout: 20000 }), 'later', worker.log());
    const info = await task.info();
    const waited = Number(micros(info.executingCreated) - micros(info.pendingCreated)) / 1e6;
    assert.ok(waited >= 1 && waited < 6, `started after ${waited} s`);
  });

  test('attempts: 2 with fail ends failed after one retry', async () => {
    const task = await queue.enqueue('fail', { message: 'again' }, { attempts: 2 });
    await assert.rejects(task.wait({ timeout: 20000 }), { name: 'TaskFailedError', code: 'exception', reason: 'again' });
    const info = await task.info();
    assert.equal(info.outcome, 'failed');
    assert.equal(info.attempts, 2);
    assert.equal(info.retries, 1, JSON.stringify(info.fields));
    assert.ok((await queue.failedIds()).includes(task.id));
  });

  test('a child of a failed parent ends as dependency-failed; a new child is refused', async () => {
    const parent = await queue.enqueue('sleep', { seconds: 0.3 }, { id: 'will-fail', timeout: 0.1 });
    const child = await queue.enqueue('echo', { text: 'never' }, { dependsOn: 'will-fail' });
    await assert.rejects(parent.wait({ timeout: 20000 }), { code: 'timeout' });
    await assert.rejects(child.wait({ timeout: 20000 }), { name: 'TaskFailedError', code: 'dependency-failed' });
    await assert.rejects(queue.enqueue('echo', { text: 'x' }, { dependsOn: parent }), { name: 'DependencyError', code: 'dependency-failed' });
  });

  test('cancel of a running task: requested, then its worker stops it', async () => {
    const task = await queue.enqueue('sleep', { seconds: 30 });
    await until(async () => (await task.state()) === 'executing', { ms: 10000, what: 'the task to start' });
    const started = Date.now();
    assert.equal(await task.cancel(), 'requested');
    await assert.rejects(task.wait({ timeout: 20000 }), (error) => {
      assert.ok(error instanceof TaskFailedError, String(error));
      assert.equal(error.code, 'cancelled');
      return true;
    });
    assert.ok(Date.now() - started < 10000, `took ${Date.now() - started} ms`);
    assert.equal((await task.result()).outcome, 'cancelled');
    assert.equal(await task.cancel(), 'finished');
  });
});
