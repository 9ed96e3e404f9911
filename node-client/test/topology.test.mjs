// The Node producer over TLS, through Sentinel and on a Redis Cluster (docs/topology.md), with a
// Python worker draining. The servers come from python/tests/topology/serve.py (the Python tests'
// own fixtures: a CA made by openssl, a primary with a replica and three sentinels, three masters),
// stopped by pid when this file ends; these tests skip only when the Python interpreter is missing.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { createInterface } from 'node:readline';

import { ConnectionFailedError, InvalidArgumentsError, InvalidUrlError, Queue } from '../dist/esm/index.js';
import { findPython, startWorker, uniqueQueue } from './support/redis.mjs';

const python = await findPython();
const skip = python ? false : 'no Python interpreter with dothis: set DOTHIS_PYTHON or create ../.venv';
const SERVE = fileURLToPath(new URL('../../python/tests/topology/serve.py', import.meta.url));

/** Starts a topology; resolves with its description and stop(). */
async function serve(kind) {
  const child = spawn(python, [SERVE, kind], { stdio: ['pipe', 'pipe', 'inherit'] });
  const [line] = await once(createInterface({ input: child.stdout }), 'line');
  return { ...JSON.parse(line), async stop() { child.stdin.end(); await once(child, 'exit'); } };
}

// All three start at once (most of their start-up is waiting): each suite awaits its own.
const started = python ? { tls: serve('tls'), sentinel: serve('sentinel'), cluster: serve('cluster') } : {};
for (const promise of Object.values(started)) promise.catch(() => undefined); // a suite reports it

/** A worker of the queue, the task's value, the worker stopped and its exit code checked. */
async function drained(url, queueName, enqueue, extra = []) {
  const worker = startWorker(python, url, queueName, extra);
  try {
    return await enqueue();
  } finally {
    const code = await worker.stop();
    assert.equal(code, 0, worker.log());
  }
}

describe('TLS', { skip }, () => {
  let tls;
  before(async () => { tls = await started.tls; });
  after(async () => { await tls?.stop(); });

  test('enqueue over rediss:// with a CA file, a Python worker runs it', async () => {
    const name = uniqueQueue('tls');
    const queue = new Queue(name, { url: `${tls.url}?tls_ca=${encodeURIComponent(tls.ca)}` });
    try {
      const value = await drained(tls.url, name, async () => {
        const one = await queue.enqueue('add', { a: 2, b: 3 });
        const many = await queue.enqueueMany(Array.from({ length: 1500 }, (_, b) => ({ fn: 'add', args: { a: 1, b } })));
        return [await one.wait({ timeout: 15000 }), ...await Promise.all([many[0], many[1499]].map((task) => task.wait({ timeout: 15000 })))];
      }, ['--tls-ca', tls.ca]);
      assert.deepEqual(value, [5, 1, 1500]);
    } finally {
      await queue.close();
    }
  });

  test('a certificate no trusted CA signed is refused, naming the fix', async () => {
    const queue = new Queue(uniqueQueue('tls'), { url: `${tls.url}?tls_ca=${encodeURIComponent(tls.otherCa)}` });
    try {
      await assert.rejects(queue.enqueue('echo', { text: 'x' }), (error) => {
        assert.ok(error instanceof ConnectionFailedError, String(error));
        assert.match(error.message, /^TLS with Redis at rediss:\/\/127\.0\.0\.1:\d+\/0.*tls_ca/);
        return true;
      });
    } finally {
      await queue.close();
    }
  });

  test('a TLS file with a redis:// URL is refused', () => {
    assert.throws(() => new Queue('q', { url: `redis://127.0.0.1:1/0?tls_ca=${encodeURIComponent(tls.ca)}` }), InvalidUrlError);
  });
});

describe('Sentinel', { skip }, () => {
  let sentinel;
  before(async () => { sentinel = await started.sentinel; });
  after(async () => { await sentinel?.stop(); });

  test('enqueue through redis+sentinel://, a Python worker runs it', async () => {
    const name = uniqueQueue('sentinel');
    const queue = new Queue(name, { url: sentinel.url });
    try {
      const value = await drained(sentinel.url, name, async () => {
        const one = await queue.enqueue('echo', { text: 'via sentinel' });
        const [many] = await queue.enqueueMany([{ fn: 'echo', args: { text: 'many via sentinel' } }]);
        return Promise.all([one, many].map((task) => task.wait({ timeout: 15000 })));
      });
      assert.deepEqual(value, ['via sentinel', 'many via sentinel']);
    } finally {
      await queue.close();
    }
  });
});

describe('Redis Cluster', { skip }, () => {
  let cluster;
  before(async () => { cluster = await started.cluster; });
  after(async () => { await cluster?.stop(); });

  test('enqueue on a tagged queue, a Python worker drains it', async () => {
    const name = `{${uniqueQueue('cluster')}}`;
    const queue = new Queue(name, { url: `${cluster.url}?cluster=1` });
    try {
      const values = await drained(cluster.url, name, async () => {
        const tasks = await Promise.all([1, 2, 3].map((b) => queue.enqueue('add', { a: 10, b })));
        tasks.push(...await queue.enqueueMany([4, 5].map((b) => ({ fn: 'add', args: { a: 10, b } }))));
        return Promise.all(tasks.map((task) => task.wait({ timeout: 15000 })));
      }, ['--cluster']);
      assert.deepEqual(values, [11, 12, 13, 14, 15]);
    } finally {
      await queue.close();
    }
  });

  test('an untagged queue name is refused, naming the fix', async () => {
    const { checkQueueNames } = await import('../dist/esm/connection.js');
    assert.throws(() => { checkQueueNames(`${cluster.url}?cluster=1`, ['emails']); }, (error) => {
      assert.ok(error instanceof InvalidArgumentsError);
      assert.match(error.message, /\{emails\}/);
      return true;
    });
  });
});
