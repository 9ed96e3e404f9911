// take.lua through the Node worker's Store (SPEC.md 5.18): claim and start several entries in one
// call, with the replies LMOVE and start.lua give; and the Node worker, which takes when several
// slots are free, runs a batch of tasks to their outcomes.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, test } from 'node:test';

import { Queue, Worker, withParams } from '../dist/esm/index.js';
import { Link } from '../dist/esm/connection.js';
import { QueueKeys } from '../dist/esm/worker/keys.js';
import { SCRIPTS } from '../dist/esm/generated/scripts.js';
import { Store, TAKE_MAX } from '../dist/esm/worker/store.js';
import { startRedis, uniqueQueue, until } from './support/redis.mjs';

const LIMITS = { maxValueBytes: 1024, maxFields: 64 };
const NOW = '2024-01-01T00:00:00.000000Z';
let server;
let link;
let store;

before(async () => {
  server = await startRedis();
  link = new Link({ url: server.url, connectTimeout: 3000, connectionName: 'dothis-take-test' });
  store = new Store(link);
});

after(async () => {
  await link?.close();
  await server?.stop();
});

async function fill(keys) {
  const { raw } = server;
  await raw.hset(keys.task('ok'), 'function', 'echo', 'state', 'pending', 'args', '{"text": "x"}');
  await raw.hset(keys.task('dup'), 'function', 'echo', 'state', 'executing', 'worker', 'other', 'claims', '3');
  await raw.hset(keys.task('big'), 'function', 'echo', 'state', 'pending', 'args', 'x'.repeat(2000));
  const order = ['ok', keys.task('ok'), 'dup', 'missing', 'big', 'bad id'];
  for (const entry of order) await raw.lpush(keys.pending, entry);
  return order;
}


test('take: each entry gets what LMOVE and start.lua would give', async () => {
  const keys = new QueueKeys(uniqueQueue('take'));
  const order = await fill(keys);
  const first = await store.take(keys, 'w1', NOW, LIMITS, 1700000000000, 4);
  const rest = await store.take(keys, 'w1', NOW, LIMITS, null, 10);
  assert.deepEqual([...first, ...rest].map(({ entry }) => entry.toString()), order);
  const replies = [...first, ...rest].map(({ reply }) => reply);
  assert.equal(replies[0].status, 'ok');
  assert.equal(replies[0].claims, 1);
  assert.equal(replies[0].fields.get('worker').toString(), 'w1');
  assert.equal(replies[0].fields.get('lease-expires').toString(), '1700000000000');
  // the same hash again, in the full-key form: a duplicate entry of a task now executing
  assert.deepEqual(replies[1], { status: 'duplicate', state: 'executing' });
  assert.deepEqual(replies[2], { status: 'duplicate', state: 'executing' });
  assert.deepEqual(replies[3], { status: 'missing' });
  assert.equal(replies[4].status, 'too-large');
  assert.equal(replies[4].claims, 1);
  assert.deepEqual(replies[5], { status: 'unstarted' });
  assert.deepEqual(await store.take(keys, 'w1', NOW, LIMITS, null, 10), []);
  // left in executing: the started ones, the missing one (to reject) and the unstarted one
  assert.deepEqual(await server.raw.lrange(keys.executing, 0, -1), ['bad id', 'big', 'missing', 'ok']);
  assert.equal(await server.raw.hget(keys.task('dup'), 'claims'), '3');
  assert.equal(await server.raw.hget(keys.task('big'), 'lease-expires'), null);
});

test('take refuses a count out of range before calling Redis', async () => {
  const keys = new QueueKeys(uniqueQueue('take'));
  for (const count of [0, TAKE_MAX + 1, 1.5]) {
    await assert.rejects(store.take(keys, 'w1', NOW, LIMITS, null, count), RangeError);
  }
});

test('the worker takes a batch when several slots are free: every entry ends as LMOVE and start would', async () => {
  const queue = new Queue(uniqueQueue('take-worker'), { url: server.url });
  const keys = new QueueKeys(queue.name);
  const functions = { add: withParams(['a', 'b'], ({ a, b }) => a + b) };
  const worker = new Worker(queue.name, { url: server.url, functions, concurrency: 4, log: () => undefined });
  try {
    await server.raw.script('FLUSH'); // the tests above loaded take.lua: this one must load it itself
    const tasks = [];
    for (let n = 0; n < 3; n += 1) tasks.push(await queue.enqueue('add', { a: n, b: 1 }));
    await server.raw.lpush(keys.pending, 'bad id', 'no-such-task');
    await server.raw.hset(keys.task('huge'), 'function', 'add', 'state', 'pending', 'args', '{}', 'pad', 'x'.repeat(9_000_000));
    await server.raw.lpush(keys.pending, 'huge');
    const running = worker.run();
    assert.deepEqual(await Promise.all(tasks.map((task) => task.wait({ timeout: 10000 }))), [1, 2, 3]);
    await until(async () => (await server.raw.llen(keys.rejected)) === 2, { what: 'two rejected records' });
    const codes = (await server.raw.lrange(keys.rejected, 0, -1)).map((record) => JSON.parse(record)['error-code']).sort();
    assert.deepEqual(codes, ['invalid-id', 'missing-hash']);
    await until(async () => (await server.raw.hget(keys.task('huge'), 'error-code')) === 'too-large', { what: 'too-large' });
    await until(async () => (await server.raw.llen(keys.executing)) === 0, { what: 'executing to empty' });
    const sha = createHash('sha1').update(SCRIPTS.take).digest('hex');
    assert.deepEqual(await server.raw.script('EXISTS', sha), [1], 'the worker claimed with take.lua');
    await worker.stop();
    await running;
  } finally {
    await worker.stop();
    await queue.close();
  }
});
