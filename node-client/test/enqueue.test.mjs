// Integration: the producer against a real redis-server; what it writes is read back raw.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  ConnectionFailedError, DothisError, InvalidArgumentsError, Queue, QueueClosedError, TaskExistsError,
} from '../dist/esm/index.js';
import { freePort, startRedis, uniqueQueue, until } from './support/redis.mjs';

const STAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;
let redis;
before(async () => { redis = await startRedis(); });
after(async () => { await redis?.stop(); });

async function withQueue(run, label) {
  const queue = new Queue(uniqueQueue(label), { url: redis.url });
  try {
    return await run(queue);
  } finally {
    await queue.close();
  }
}

describe('enqueue', () => {
  test('writes exactly the brief\'s fields and LPUSHes the bare id', () => withQueue(async (queue) => {
    const before = Date.now();
    const task = await queue.enqueue('echo', { text: 'ooh yeeah', n: [1, 2.5, null, true] });
    assert.match(task.id, /^[0-9a-f-]{36}$/);
    assert.equal(task.key, `${queue.name}:task:${task.id}`);
    assert.equal(task.queue, queue.name);
    const hash = await redis.raw.hgetall(task.key);
    assert.deepEqual(Object.keys(hash).sort(), ['args', 'function', 'pending-created', 'state']);
    assert.equal(hash.function, 'echo');
    assert.equal(hash.state, 'pending');
    assert.deepEqual(JSON.parse(hash.args), { text: 'ooh yeeah', n: [1, 2.5, null, true] });
    assert.match(hash['pending-created'], STAMP);
    const created = Date.parse(hash['pending-created'].slice(0, 23) + 'Z');
    assert.ok(created >= before - 2 && created <= Date.now() + 2);
    assert.deepEqual(await redis.raw.lrange(`${queue.name}:pending`, 0, -1), [task.id]);
    assert.equal(await redis.raw.type(task.key), 'hash');
    assert.equal(await task.state(), 'pending');
    assert.equal(await task.result(), null);
    assert.equal(await queue.length(), 1);
  }, 'fields'));

  test('default args are {} and order is FIFO from the right', () => withQueue(async (queue) => {
    const first = await queue.enqueue('echo');
    const second = await queue.enqueue('echo', { text: 'b' });
    assert.equal(await redis.raw.hget(first.key, 'args'), '{}');
    assert.equal(await redis.raw.rpop(`${queue.name}:pending`), first.id);
    assert.equal(await redis.raw.rpop(`${queue.name}:pending`), second.id);
  }, 'fifo'));

  test('custom id, including colons and glob characters', () => withQueue(async (queue) => {
    const task = await queue.enqueue('add', { a: 1, b: 2 }, { id: 'order:42*[x]?' });
    assert.equal(task.id, 'order:42*[x]?');
    assert.equal(task.key, `${queue.name}:task:order:42*[x]?`);
    assert.equal(await redis.raw.hget(task.key, 'function'), 'add');
    assert.deepEqual(await redis.raw.lrange(`${queue.name}:pending`, 0, -1), ['order:42*[x]?']);
    assert.equal((await queue.getTask('order:42*[x]?'))?.key, task.key);
    assert.equal(await queue.getTask('order:43'), null);
  }, 'custom'));

  test('an existing id rejects with TaskExistsError and writes nothing', () => withQueue(async (queue) => {
    await queue.enqueue('echo', { text: 'first' }, { id: 'same' });
    await assert.rejects(queue.enqueue('echo', { text: 'second' }, { id: 'same' }), (error) => {
      assert.ok(error instanceof TaskExistsError && error instanceof DothisError);
      assert.equal(error.code, 'task-exists');
      assert.equal(error.id, 'same');
      assert.match(error.message, /"same" already exists/);
      return true;
    });
    assert.equal(JSON.parse(await redis.raw.hget(`${queue.name}:task:same`, 'args')).text, 'first');
    assert.equal(await queue.length(), 1);
    // a key of another type counts as existing too (enqueue.lua: EXISTS of any type)
    await redis.raw.set(`${queue.name}:task:str`, 'x');
    await assert.rejects(queue.enqueue('echo', {}, { id: 'str' }), TaskExistsError);
    assert.equal(await queue.getTask('str'), null);
  }, 'exists'));

  test('invalid input writes nothing', () => withQueue(async (queue) => {
    await assert.rejects(queue.enqueue('echo', { text: NaN }, { id: 'bad' }), InvalidArgumentsError);
    assert.equal(await redis.raw.exists(`${queue.name}:task:bad`), 0);
    await assert.rejects(queue.enqueueMany([{ fn: 'echo', id: 'ok' }, { fn: 'echo', args: { x: NaN } }]),
      { field: 'tasks[1].args.x' });
    assert.equal(await redis.raw.exists(`${queue.name}:task:ok`), 0);
    assert.equal(await queue.length(), 0);
  }, 'invalid'));
});

describe('enqueueMany', () => {
  test('writes every task, in order', () => withQueue(async (queue) => {
    const specs = Array.from({ length: 2500 }, (_, i) => ({ fn: 'add', args: { a: i, b: 1 } }));
    const tasks = await queue.enqueueMany(specs);
    assert.equal(tasks.length, 2500);
    assert.equal(new Set(tasks.map((t) => t.id)).size, 2500);
    assert.equal(await queue.length(), 2500);
    assert.equal(await redis.raw.rpop(`${queue.name}:pending`), tasks[0].id);
    assert.deepEqual(JSON.parse(await redis.raw.hget(tasks[2499].key, 'args')), { a: 2499, b: 1 });
  }, 'many'));

  test('existing ids are reported, the rest enqueued', () => withQueue(async (queue) => {
    await queue.enqueue('echo', {}, { id: 'taken' });
    await assert.rejects(queue.enqueueMany([{ fn: 'echo', id: 'a' }, { fn: 'echo', id: 'taken' }, { fn: 'echo', id: 'b' }]),
      (error) => {
        assert.ok(error instanceof TaskExistsError);
        assert.deepEqual(error.ids, ['taken']);
        assert.deepEqual(error.enqueuedIds, ['a', 'b']);
        return true;
      });
    assert.equal(await queue.length(), 3);
    assert.deepEqual(await queue.enqueueMany([]), []);
  }, 'many-exists'));

  test('works after SCRIPT FLUSH (EVALSHA falls back to loading the script)', () => withQueue(async (queue) => {
    await queue.enqueue('echo');
    await redis.raw.script('FLUSH');
    await queue.enqueue('echo');
    await redis.raw.script('FLUSH');
    await queue.enqueueMany([{ fn: 'echo' }, { fn: 'echo' }]);
    assert.equal(await queue.length(), 4);
  }, 'flush'));

  test('like tasks, tasks with options and custom ids in one call are each written whole', () => withQueue(async (queue) => {
    const specs = [
      ...Array.from({ length: 1500 }, () => ({ fn: 'noop' })),
      { fn: 'echo', args: { text: 'x' }, id: 'own-\u00e9', attempts: 2 },
      ...Array.from({ length: 1500 }, (_, i) => ({ fn: 'noop', args: { i } })),
      { fn: 'echo', atFront: true },
      { fn: 'echo', id: 'later', delay: 60, description: 'd' },
    ];
    const tasks = await queue.enqueueMany(specs);
    assert.equal(new Set(tasks.map((t) => t.id)).size, specs.length);
    assert.equal(await queue.length(), specs.length - 1);
    assert.equal(await queue.scheduledCount(), 1);
    const hash = (task) => redis.raw.hgetall(task.key);
    const [plain, own, argued, front, later] = await Promise.all([tasks[0], tasks[1500], tasks[1600], tasks.at(-2), tasks.at(-1)].map(hash));
    assert.match(tasks[0].id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.deepEqual(Object.keys(plain).sort(), ['args', 'function', 'pending-created', 'state']);
    assert.equal(plain.args, '{}');
    assert.match(plain['pending-created'], STAMP);
    assert.equal(own['pending-created'], plain['pending-created'], 'the tasks of one call share their time');
    assert.deepEqual({ ...own, 'pending-created': '' },
      { function: 'echo', state: 'pending', args: '{"text":"x"}', attempts: '2', 'pending-created': '' });
    assert.equal(tasks[1500].id, 'own-\u00e9');
    assert.equal(argued.args, '{"i":99}');
    assert.equal(await redis.raw.rpop(`${queue.name}:pending`), tasks.at(-2).id, 'atFront runs next');
    assert.equal(front.function, 'echo');
    assert.equal(later.state, 'scheduled');
    assert.equal(later.description, 'd');
  }, 'many-mixed'));

  test('a bad task after many like ones: refused by its index, nothing written', () => withQueue(async (queue) => {
    const like = Array.from({ length: 1000 }, () => ({ fn: 'noop', args: { a: [1] } }));
    for (const [bad, field] of [
      [{ fn: 'noop', args: { a: [1, NaN] } }, 'tasks[1000].args.a[1]'], [{ fn: 'noop', args: [1] }, 'tasks[1000].args'],
      [{ fn: '', args: { a: [1] } }, 'tasks[1000].function'], [{ fn: 'noop', args: { a: [1] }, atFront: 1 }, 'tasks[1000].atFront'],
      [null, 'tasks[1000]'], [{ fn: 'noop', args: { a: [1] }, id: 'x y' }, 'tasks[1000].id'],
    ]) {
      await assert.rejects(queue.enqueueMany([...like, bad, ...like]), (error) => error instanceof InvalidArgumentsError && error.field === field, field);
    }
    assert.equal(await queue.length(), 0);
    assert.equal(await redis.raw.exists(`${queue.name}:pending`), 0);
  }, 'many-bad'));

  test('a SCRIPT FLUSH during the call: the refused calls are sent again', () => withQueue(async (queue) => {
    await queue.length();
    const flushes = setInterval(() => { redis.raw.script('FLUSH').catch(() => undefined); }, 5);
    try {
      const tasks = await queue.enqueueMany(Array.from({ length: 30000 }, (_, i) => ({ fn: 'noop', args: { i } })));
      assert.equal(new Set(tasks.map((t) => t.id)).size, 30000);
    } finally {
      clearInterval(flushes);
    }
    assert.equal(await queue.length(), 30000);
  }, 'many-flush'));

  test('a connection lost during the call: ConnectionFailedError, and the queue works on', () => withQueue(async (queue) => {
    await queue.length();
    let killed = false;
    const watch = setInterval(async () => {
      if (killed || await redis.raw.llen(`${queue.name}:pending`) < 5000) return;
      killed = true;
      await redis.raw.client('KILL', 'SKIPME', 'yes', 'TYPE', 'normal');
    }, 1);
    try {
      await assert.rejects(queue.enqueueMany(Array.from({ length: 100000 }, () => ({ fn: 'noop' }))), ConnectionFailedError);
    } finally {
      clearInterval(watch);
    }
    assert.ok(killed);
    const [task] = await queue.enqueueMany([{ fn: 'echo' }]);
    assert.equal(await redis.raw.hget(task.key, 'state'), 'pending');
  }, 'many-lost'));
});

describe('task handles', () => {
  test('state, result and info read the hash', () => withQueue(async (queue) => {
    const task = await queue.enqueue('echo', { text: 'x' }, { id: 'info' });
    const info = await task.info();
    assert.equal(info.function, 'echo');
    assert.equal(info.state, 'pending');
    assert.equal(info.outcome, null);
    assert.equal(info.claims, 0);
    await redis.raw.hset(task.key, 'state', 'finished', 'result-value', '"x"', 'result', 'successful');
    assert.equal(await task.state(), 'finished');
    assert.deepEqual(await task.result(), { outcome: 'successful', value: 'x' });
    assert.equal((await task.info()).value, 'x');
    await redis.raw.hdel(task.key, 'state');
    assert.equal(await task.state(), 'pending'); // omitted state reads as pending
    await redis.raw.del(task.key);
    assert.equal(await task.state(), null);
    assert.equal(await task.info(), null);
  }, 'handles'));
});

describe('errors', () => {
  test('unreachable Redis fails fast, naming the URL and the fix', async () => {
    const url = `redis://127.0.0.1:${await freePort()}/0`;
    const queue = new Queue('nowhere', { url });
    const started = Date.now();
    for (const call of [() => queue.enqueue('echo'), () => queue.length(), () => queue.task('x').wait({ timeout: 10000 })]) {
      await assert.rejects(call(), (error) => {
        assert.ok(error instanceof ConnectionFailedError && error instanceof DothisError, `got ${error}`);
        assert.equal(error.code, 'connection-failed');
        assert.ok(error.message.startsWith(
          `cannot reach Redis at ${url}: is redis-server running? set DOTHIS_REDIS_URL`), error.message);
        return true;
      });
    }
    assert.ok(Date.now() - started < 5000, `took ${Date.now() - started} ms`);
    await queue.close();
  });

  test('calls fail fast while Redis is down and work again once it is back', async () => {
    const server = await startRedis();
    const queue = new Queue(uniqueQueue('restart'), { url: server.url });
    let restarted;
    try {
      const task = await queue.enqueue('echo', { text: 'before' });
      await server.stop();
      const started = Date.now();
      await assert.rejects(queue.enqueue('echo'), (error) => error instanceof ConnectionFailedError && error.message.includes(server.url));
      await assert.rejects(queue.length(), ConnectionFailedError);
      assert.ok(Date.now() - started < 4000, `took ${Date.now() - started} ms`);
      restarted = await startRedis(server.port); // empty: --save "" keeps nothing
      await until(async () => {
        try {
          return (await queue.length()) === 0;
        } catch (error) {
          if (error instanceof ConnectionFailedError) return false;
          throw error;
        }
      }, { ms: 10000, what: 'the queue to reconnect' });
      const again = await queue.enqueue('echo', { text: 'after' }, { id: task.id });
      assert.equal(await restarted.raw.hget(again.key, 'state'), 'pending');
    } finally {
      await queue.close();
      await restarted?.stop();
    }
  });

  test('a password in the URL is masked', async () => {
    const queue = new Queue('nowhere', { url: `redis://:hunter2@127.0.0.1:${await freePort()}/0` });
    await assert.rejects(queue.length(), (error) => !error.message.includes('hunter2') && error.message.includes('****'));
    await queue.close();
  });

  test('a closed queue rejects every call', async () => {
    const queue = new Queue(uniqueQueue('closed'), { url: redis.url });
    const task = await queue.enqueue('echo');
    const pending = assert.rejects(task.wait(), QueueClosedError);
    await queue.close();
    await pending;
    for (const call of [() => queue.enqueue('echo'), () => queue.enqueueMany([{ fn: 'echo' }]), () => queue.length(),
      () => queue.getTask(task.id), () => task.state(), () => task.wait()]) {
      await assert.rejects(call(), (error) => {
        assert.ok(error instanceof QueueClosedError && error instanceof DothisError);
        assert.equal(error.code, 'queue-closed');
        assert.match(error.message, /is closed/);
        return true;
      });
    }
    await queue.close(); // idempotent
  });
});
