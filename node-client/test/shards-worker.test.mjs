// A Node worker serving one logical queue over many shards (SPEC.md 11.2): it claims from every
// shard in turn, drains tasks a Python producer spread over the shards, and refuses a shard count
// other than the declared one.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { InvalidArgumentsError, Queue } from '../dist/esm/index.js';
import { shardOf } from '../dist/esm/shards.js';
import { Claimer } from '../dist/esm/worker/claims.js';
import { Worker } from '../dist/esm/worker/worker.js';
import { findPython, runPython, spawnWorker, startRedis, until } from './support/redis.mjs';

const CLI = fileURLToPath(new URL('../dist/esm/worker/cli.js', import.meta.url));

const python = await findPython();
const skip = python ? false
  : `no Python interpreter with dothis: set DOTHIS_PYTHON or create ../.venv (tried ${process.env.DOTHIS_PYTHON || '../.venv/bin/python'})`;
const lines = [];
const quiet = (level, source, message) => { lines.push(`${level} ${source}: ${message}`); };

test('the shards option serves every shard, and each claim starts at the next one', () => {
  const worker = new Worker(['emails', 'low'], { functions: { echo: () => null }, shards: 3, url: 'redis://127.0.0.1:1/0' });
  assert.deepEqual(worker.queues, ['{emails.0}', '{emails.1}', '{emails.2}', '{low.0}', '{low.1}', '{low.2}']);
  assert.throws(() => new Worker('{emails}', { functions: {}, shards: 2 }), InvalidArgumentsError);
  assert.throws(() => new Worker('emails', { functions: {}, shards: 0 }), InvalidArgumentsError);
  const lanes = ['high', 's0', 's1', 's2'].map((queue) => ({ queue }));
  const claimer = new Claimer({ settings: { concurrency: 1 } }, { redis: { on() {} } }, lanes, async () => {}, [1, 3]);
  const orders = [1, 2, 3, 4].map(() => claimer.order().map((lane) => lane.queue).join(' '));
  assert.deepEqual(orders, ['high s0 s1 s2', 'high s1 s2 s0', 'high s2 s0 s1', 'high s0 s1 s2']);
});

describe('sharded queue, Python producer and Node worker', { skip }, () => {
  let redis;
  const name = `wshard${process.pid}`;

  before(async () => { redis = await startRedis(); });
  after(async () => { await redis?.stop(); });

  test('a Node worker with shards 3 drains 60 tasks spread over the 3 shards', async () => {
    const code = 'import json\nfrom dothis import Queue\n'
      + `with Queue(${JSON.stringify(name)}, ${JSON.stringify(redis.url)}, shards=3) as q:\n`
      + '    print(json.dumps([t.id for t in q.enqueue_many([("echo", {"text": i}) for i in range(60)])]))';
    const ids = JSON.parse(await runPython(python, code));
    assert.equal(ids.length, 60);
    assert.equal(new Set(ids.map((id) => shardOf(id, 3))).size, 3);
    const seen = new Set();
    const worker = new Worker(name, { url: redis.url, shards: 3, concurrency: 4, log: quiet, functions: { echo: ({ text }) => text } });
    const queue = new Queue(name, { url: redis.url, shards: 3 });
    const running = worker.run();
    try {
      await until(async () => (await queue.succeededIds({ count: 100 })).length === 60, { ms: 20000, what: `all 60 succeeded\n${lines.join('\n')}` });
      for (const id of ids) seen.add((await queue.getTask(id))?.queue);
      assert.deepEqual([...seen].sort(), [0, 1, 2].map((i) => `{${name}.${i}}`));
      assert.equal(await queue.length(), 0);
    } finally {
      await worker.stop({ graceMs: 1000 });
      await running;
      await queue.close();
    }
  });

  test('a worker given another shard count than the declared one is refused', { timeout: 20000 }, async () => {
    const worker = new Worker(name, { url: redis.url, shards: 2, log: quiet, functions: { echo: () => null } });
    await assert.rejects(worker.run(), (error) => error instanceof InvalidArgumentsError && error.code === 'invalid-arguments'
      && /declared with 3 shard/.test(error.message) && /given 2/.test(error.message));
  });

  test('dothis-worker --shards refuses another count, naming both', { timeout: 20000 }, async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'dothis-shards-'));
    try {
      const file = path.join(dir, 'functions.mjs');
      await writeFile(file, 'export function echo({ text }) { return text; }\n');
      const worker = spawnWorker(process.execPath, [CLI, '--url', redis.url, '--queue', name, '--shards', '4', '--pool', 'inline', file]);
      await until(() => /declared with 3 shard/.test(worker.log()), { ms: 15000, what: 'the refusal' });
      assert.equal(await worker.stop(), 1, worker.log());
      assert.match(worker.log(), /given 4/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
