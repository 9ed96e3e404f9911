// One logical queue over many shards (SPEC.md 11.2): Node and Python put a task id in the same
// shard, a Node producer spreads tasks that a Python worker serving every shard drains, and a
// shard count other than the declared one is refused.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { InvalidArgumentsError, Queue } from '../dist/esm/index.js';
import { crc32, shardOf } from '../dist/esm/shards.js';
import { findPython, runPython, startRedis, startWorker, until } from './support/redis.mjs';

const python = await findPython();
const skip = python ? false
  : `no Python interpreter with dothis: set DOTHIS_PYTHON or create ../.venv (tried ${process.env.DOTHIS_PYTHON || '../.venv/bin/python'})`;

// The vectors of SPEC.md 11.2 (and of the Python tests).
const VECTORS = [['11111111-2222-2222-2222-333333333333', 4, 0], ['a', 4, 3], ['emails-1', 8, 7], ['héllo', 3, 2]];

test('the shard of an id follows the vectors of SPEC.md 11.2', () => {
  assert.equal(crc32('a'), 3904355907);
  assert.deepEqual(VECTORS.map(([id, count]) => shardOf(id, count)), VECTORS.map(([, , shard]) => shard));
  assert.throws(() => new Queue('{emails}', { shards: 2 }), InvalidArgumentsError);
  assert.throws(() => new Queue('emails', { shards: 0 }), InvalidArgumentsError);
});

describe('sharded queue, Node producer and Python worker', { skip }, () => {
  let redis;
  const name = `nshard${process.pid}`;

  before(async () => { redis = await startRedis(); });
  after(async () => { await redis?.stop(); });

  test('Python and Node put the same ids in the same shards', async () => {
    const ids = Array.from({ length: 50 }, (_, i) => `id-${i}-é`);
    const code = `import json, sys\nfrom dothis.wire.shards import shard_of\nids = json.loads(sys.argv[1] if len(sys.argv) > 1 else ${JSON.stringify(JSON.stringify(ids))})\nprint(json.dumps([shard_of(i, 7) for i in ids]))`;
    const fromPython = JSON.parse(await runPython(python, code));
    assert.deepEqual(ids.map((id) => shardOf(id, 7)), fromPython);
  });

  test('tasks spread over the shards and a Python worker with --shards drains them', async () => {
    const queue = new Queue(name, { url: redis.url, shards: 4 });
    const worker = startWorker(python, redis.url, name, ['--shards', '4', '--pool', 'inline']);
    try {
      const tasks = await queue.enqueueMany(Array.from({ length: 40 }, (_, i) => ({ fn: 'echo', args: { text: i } })));
      for (const task of tasks) assert.equal(task.queue, `{${name}.${shardOf(task.id, 4)}}`);
      assert.ok(new Set(tasks.map((task) => task.queue)).size > 1);
      assert.deepEqual(await Promise.all(tasks.slice(0, 5).map((task) => task.wait({ timeout: 20000 }))), [0, 1, 2, 3, 4]);
      await until(async () => (await queue.succeededIds({ count: 100 })).length === 40, { ms: 20000, what: 'all 40 succeeded' });
      assert.equal(await queue.length(), 0);
      const again = await queue.getTask(tasks[9].id);
      assert.equal(again?.queue, tasks[9].queue);
      const parent = await queue.enqueue('echo', { text: 'parent' });
      const child = await queue.enqueue('echo', { text: 'child' }, { dependsOn: parent });
      assert.equal(child.queue, parent.queue);
      assert.equal(await child.wait({ timeout: 20000 }), 'child');
    } finally {
      await queue.close();
      assert.equal(await worker.stop(), 0, worker.log());
    }
  });

  test('a shard count other than the declared one is refused', async () => {
    const wrong = new Queue(name, { url: redis.url, shards: 3 });
    try {
      await assert.rejects(wrong.enqueue('echo', { text: 'no' }), (error) => error instanceof InvalidArgumentsError
        && error.code === 'invalid-arguments' && /declared with 4 shard/.test(error.message));
    } finally {
      await wrong.close();
    }
  });
});
