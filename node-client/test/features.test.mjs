// Integration: enqueue options, dependencies, cancel and inspection against a real redis-server;
// what the producer writes is read back raw.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  DependencyError, DothisError, InvalidArgumentsError, Queue, TaskExistsError, TaskFailedError, TaskNotFoundError,
} from '../dist/esm/index.js';
import { finishRaw, startRedis, uniqueQueue } from './support/redis.mjs';

const STAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;
const BASE = ['args', 'function', 'pending-created', 'state'];
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

/** Microseconds since the epoch of a protocol timestamp. */
const micros = (stamp) => BigInt(Date.parse(`${stamp.slice(0, 19)}Z`)) * 1000n + BigInt(stamp.slice(20, 26));

/** Writes a finished hash for `id` the way a worker would (no message needed here). */
async function finished(queue, id, result) {
  const fields = result === 'successful'
    ? ['result-value', 'null']
    : ['error-code', result === 'failed' ? 'exception' : result, 'error-reason', 'x', 'error-exception', ''];
  await redis.raw.hset(`${queue.name}:task:${id}`, 'function', 'echo', 'state', 'finished', 'result', result,
    'executing-created', '2026-01-01T00:00:00.000000Z', 'finished-created', '2026-01-01T00:00:01.500000Z', ...fields);
}

describe('enqueue options write exactly their fields', () => {
  test('attempts, timeout, ttl, resultTtl, failureTtl, onSuccess, onFailure, description', () => withQueue(async (queue) => {
    const task = await queue.enqueue('echo', { text: 'x' }, {
      id: 'all', attempts: 3, timeout: 2.5, ttl: 60, resultTtl: -1, failureTtl: 3600,
      onSuccess: 'notify', onFailure: 'alert', description: 'nightly report ✓',
    });
    const hash = await redis.raw.hgetall(task.key);
    assert.deepEqual(Object.keys(hash).sort(), [...BASE, 'attempts', 'description', 'failure-ttl', 'on-failure',
      'on-success', 'result-ttl', 'timeout', 'ttl'].sort());
    assert.deepEqual({ ...hash, 'pending-created': undefined, args: undefined }, {
      function: 'echo', state: 'pending', attempts: '3', timeout: '2.5', ttl: '60', 'result-ttl': '-1',
      'failure-ttl': '3600', 'on-success': 'notify', 'on-failure': 'alert', description: 'nightly report ✓',
      'pending-created': undefined, args: undefined,
    });
    assert.deepEqual(await redis.raw.lrange(`${queue.name}:pending`, 0, -1), ['all']);
    const info = await task.info();
    assert.equal(info.attempts, 3);
    assert.equal(info.timeout, 2.5);
    assert.equal(info.ttl, 60);
    assert.equal(info.resultTtl, -1);
    assert.equal(info.failureTtl, 3600);
    assert.equal(info.onSuccess, 'notify');
    assert.equal(info.onFailure, 'alert');
    assert.equal(info.description, 'nightly report ✓');
    assert.equal(info.retries, 0);
    assert.equal(info.dependsOn, null);
    assert.equal(info.timeTaken, null);
  }, 'opts'));

  test('timeout is decimal text', () => withQueue(async (queue) => {
    const cases = [[30, '30'], [0.1, '0.1'], [1.0000004, '1'], [0.000001, '0.000001'], [86400.25, '86400.25']];
    for (const [timeout, text] of cases) {
      const task = await queue.enqueue('echo', {}, { timeout });
      assert.equal(await redis.raw.hget(task.key, 'timeout'), text, String(timeout));
    }
  }, 'timeout'));

  test('delay: scheduled, scheduled-for and the score in <queue>:scheduled', () => withQueue(async (queue) => {
    const before = Date.now();
    const task = await queue.enqueue('echo', {}, { delay: 30 });
    const after = Date.now();
    const hash = await redis.raw.hgetall(task.key);
    assert.deepEqual(Object.keys(hash).sort(), [...BASE, 'scheduled-for'].sort());
    assert.equal(hash.state, 'scheduled');
    assert.match(hash['scheduled-for'], STAMP);
    const due = micros(hash['scheduled-for']);
    // the clock is Date.now() refined with the monotonic clock: allow a couple of ms either way
    assert.ok(due >= BigInt(before + 30000 - 2) * 1000n && due <= BigInt(after + 30000 + 2) * 1000n, String(due));
    assert.equal(due - micros(hash['pending-created']), 30_000_000n);
    const score = Number(await redis.raw.zscore(`${queue.name}:scheduled`, task.id));
    assert.equal(score, Number((due + 999n) / 1000n));
    assert.equal(await redis.raw.llen(`${queue.name}:pending`), 0);
    assert.equal(await queue.scheduledCount(), 1);
    assert.equal(await task.state(), 'scheduled');
    assert.equal((await task.info()).scheduledFor, hash['scheduled-for']);
  }, 'delay'));

  test('at: the Date is the due time', () => withQueue(async (queue) => {
    const at = new Date('2031-02-03T04:05:06.789Z');
    const task = await queue.enqueue('echo', {}, { at });
    assert.equal(await redis.raw.hget(task.key, 'scheduled-for'), '2031-02-03T04:05:06.789000Z');
    assert.equal(await redis.raw.zscore(`${queue.name}:scheduled`, task.id), String(at.getTime()));
    const past = await queue.enqueue('echo', {}, { at: new Date(0), id: 'epoch' });
    assert.equal(await redis.raw.zscore(`${queue.name}:scheduled`, past.id), '0');
    assert.equal(await queue.scheduledCount(), 2);
  }, 'at'));

  test('atFront RPUSHes: the task runs next', () => withQueue(async (queue) => {
    await queue.enqueue('echo', {}, { id: 'a' });
    await queue.enqueue('echo', {}, { id: 'b' });
    await queue.enqueue('echo', {}, { id: 'urgent', atFront: true });
    await queue.enqueue('echo', {}, { id: 'c', atFront: false });
    assert.deepEqual(await redis.raw.lrange(`${queue.name}:pending`, 0, -1), ['c', 'b', 'a', 'urgent']);
    assert.equal(await redis.raw.rpop(`${queue.name}:pending`), 'urgent');
    assert.deepEqual(Object.keys(await redis.raw.hgetall(`${queue.name}:task:urgent`)).sort(), BASE);
  }, 'front'));

  test('enqueueMany takes the same options per task', () => withQueue(async (queue) => {
    const [a, b, c] = await queue.enqueueMany([
      { fn: 'echo', id: 'm1', attempts: 2 },
      { fn: 'echo', args: { text: 'x' }, id: 'm2', delay: 10, description: 'later' },
      { fn: 'echo', id: 'm3', dependsOn: 'm1' },
    ]);
    assert.equal(await redis.raw.hget(a.key, 'attempts'), '2');
    assert.equal(await redis.raw.hget(b.key, 'state'), 'scheduled');
    assert.equal(await redis.raw.hget(b.key, 'description'), 'later');
    assert.equal(await redis.raw.hget(c.key, 'state'), 'waiting');
    assert.deepEqual(await redis.raw.smembers(`${queue.name}:dependents:m1`), ['m3']);
    assert.deepEqual(await queue.pendingIds(), ['m1']);
    await assert.rejects(queue.enqueueMany([{ fn: 'echo' }, { fn: 'echo', attempts: 0 }]), { field: 'tasks[1].attempts' });
    await assert.rejects(queue.enqueueMany([{ fn: 'echo', delai: 1 }]), { field: 'tasks[0].delai' });
  }, 'many'));
});

describe('option validation names the option and writes nothing', () => {
  const bad = [
    [{ attempts: 0 }, 'attempts'], [{ attempts: 1.5 }, 'attempts'], [{ attempts: '3' }, 'attempts'],
    [{ timeout: 0 }, 'timeout'], [{ timeout: -1 }, 'timeout'], [{ timeout: Infinity }, 'timeout'], [{ timeout: 1e-9 }, 'timeout'],
    [{ delay: -1 }, 'delay'], [{ delay: NaN }, 'delay'], [{ delay: '5' }, 'delay'], [{ delay: 1e12 }, 'delay'],
    [{ at: '2030-01-01' }, 'at'], [{ at: new Date('nope') }, 'at'], [{ at: new Date(-1) }, 'at'],
    [{ delay: 1, at: new Date() }, 'at'],
    [{ atFront: 1 }, 'atFront'], [{ atFront: true, delay: 5 }, 'atFront'],
    [{ dependsOn: 'p', delay: 5 }, 'dependsOn'], [{ dependsOn: 'p', at: new Date() }, 'dependsOn'],
    [{ dependsOn: 'bad id' }, 'dependsOn'], [{ dependsOn: ['ok', 3] }, 'dependsOn[1]'], [{ dependsOn: [''] }, 'dependsOn[0]'],
    [{ dependsOn: { id: 'x', queue: 'another' } }, 'dependsOn'], [{ id: 'me', dependsOn: ['me'] }, 'dependsOn'],
    [{ ttl: 0 }, 'ttl'], [{ ttl: -1 }, 'ttl'], [{ ttl: 2.5 }, 'ttl'],
    [{ resultTtl: 0 }, 'resultTtl'], [{ resultTtl: -2 }, 'resultTtl'], [{ failureTtl: 1.5 }, 'failureTtl'],
    [{ onSuccess: '' }, 'onSuccess'], [{ onFailure: 7 }, 'onFailure'],
    [{ description: 5 }, 'description'], [{ description: '\ud800' }, 'description'],
    [{ retries: 3 }, 'retries'], [{ id: 'a b' }, 'id'],
  ];
  for (const [options, field] of bad) {
    test(`${JSON.stringify(options, (k, v) => (v instanceof Date || Number.isNaN(v) || v === Infinity ? String(v) : v))} -> ${field}`,
      () => withQueue(async (queue) => {
        await assert.rejects(queue.enqueue('echo', {}, options), (error) => {
          assert.ok(error instanceof InvalidArgumentsError, String(error));
          assert.equal(error.field, field, error.message);
          assert.ok(error.message.startsWith(`invalid ${field}: `), error.message);
          return true;
        });
        assert.deepEqual(await redis.raw.keys(`${queue.name}:*`), []);
      }, 'bad'));
  }

  test('the combination errors say why', () => withQueue(async (queue) => {
    await assert.rejects(queue.enqueue('echo', {}, { dependsOn: 'p', delay: 5 }), /dependsOn: cannot be combined with delay/);
    await assert.rejects(queue.enqueue('echo', {}, { options: 1 }), /not an enqueue option/);
    await assert.rejects(queue.enqueue('echo', {}, null), { field: 'options' });
    // undefined counts as not given
    const task = await queue.enqueue('echo', {}, { delay: undefined, dependsOn: undefined, attempts: undefined });
    assert.deepEqual(Object.keys(await redis.raw.hgetall(task.key)).sort(), BASE);
  }, 'combo'));
});

describe('dependsOn', () => {
  test('an unfinished parent: waiting, waiting-for, depends-on, the dependents set', () => withQueue(async (queue) => {
    const parent = await queue.enqueue('echo', {}, { id: 'parent' });
    const other = await queue.enqueue('echo', {}, { id: 'other', delay: 60 });
    const child = await queue.enqueue('echo', { text: 'c' }, { id: 'child', dependsOn: [parent, 'other', 'parent'] });
    const hash = await redis.raw.hgetall(child.key);
    assert.deepEqual(Object.keys(hash).sort(), [...BASE, 'depends-on', 'waiting-for'].sort());
    assert.equal(hash.state, 'waiting');
    assert.equal(hash['waiting-for'], '2');
    assert.equal(hash['depends-on'], '["parent","other"]');
    assert.deepEqual(await redis.raw.smembers(`${queue.name}:dependents:parent`), ['child']);
    assert.deepEqual(await redis.raw.smembers(`${queue.name}:dependents:other`), ['child']);
    assert.deepEqual(await queue.pendingIds(), ['parent']);
    assert.equal(await queue.scheduledCount(), 1);
    const info = await child.info();
    assert.equal(info.state, 'waiting');
    assert.deepEqual(info.dependsOn, ['parent', 'other']);
    assert.equal(info.waitingFor, 2);
    assert.equal(other.id, 'other');
  }, 'deps'));

  test('a succeeded parent counts as done: the child is queued at once', () => withQueue(async (queue) => {
    await finished(queue, 'done', 'successful');
    const child = await queue.enqueue('echo', {}, { dependsOn: 'done', atFront: true });
    const hash = await redis.raw.hgetall(child.key);
    assert.equal(hash.state, 'pending');
    assert.equal(hash['depends-on'], '["done"]');
    assert.equal(hash['waiting-for'], undefined);
    assert.deepEqual(await queue.pendingIds(), [child.id]);
    assert.equal(await redis.raw.exists(`${queue.name}:dependents:done`), 0);
  }, 'deps-done'));

  for (const result of ['failed', 'cancelled', 'expired']) {
    test(`a ${result} parent: DependencyError, nothing written`, () => withQueue(async (queue) => {
      await finished(queue, 'good', 'successful');
      await finished(queue, 'bad', result);
      await assert.rejects(queue.enqueue('echo', {}, { id: 'child', dependsOn: ['good', 'bad'] }), (error) => {
        assert.ok(error instanceof DependencyError && error instanceof DothisError);
        assert.equal(error.code, 'dependency-failed');
        assert.equal(error.reason, 'parent-failed');
        assert.equal(error.parentId, 'bad');
        assert.equal(error.id, 'child');
        assert.match(error.message, /parent "bad" finished without success/);
        return true;
      });
      assert.equal(await redis.raw.exists(`${queue.name}:task:child`), 0);
      assert.equal(await redis.raw.llen(`${queue.name}:pending`), 0);
    }, 'deps-failed'));
  }

  test('an unknown parent: DependencyError, nothing written', () => withQueue(async (queue) => {
    await queue.enqueue('echo', {}, { id: 'known' });
    await assert.rejects(queue.enqueue('echo', {}, { id: 'child', dependsOn: ['known', 'ghost'] }), (error) => {
      assert.ok(error instanceof DependencyError);
      assert.equal(error.code, 'dependency-missing');
      assert.equal(error.reason, 'parent-missing');
      assert.equal(error.parentId, 'ghost');
      assert.match(error.message, /parent "ghost" does not exist/);
      return true;
    });
    assert.equal(await redis.raw.exists(`${queue.name}:task:child`), 0);
    assert.equal(await redis.raw.exists(`${queue.name}:dependents:known`), 0);
    assert.deepEqual(await queue.pendingIds(), ['known']);
  }, 'deps-missing'));

  test('enqueueMany reports tasks refused for their parents and enqueues the rest', () => withQueue(async (queue) => {
    await finished(queue, 'bad', 'failed');
    await assert.rejects(queue.enqueueMany([
      { fn: 'echo', id: 'ok' }, { fn: 'echo', id: 'c1', dependsOn: 'bad' }, { fn: 'echo', id: 'c2', dependsOn: 'ghost' },
    ]), (error) => {
      assert.ok(error instanceof DependencyError);
      assert.equal(error.id, 'c1');
      assert.equal(error.parentId, 'bad');
      assert.deepEqual(error.ids, ['c1', 'c2']);
      assert.deepEqual(error.enqueuedIds, ['ok']);
      return true;
    });
    assert.deepEqual(await queue.pendingIds(), ['ok']);
  }, 'deps-many'));
});

describe('ids of finished tasks are used again', () => {
  test('a finished id is replaced; an unfinished one raises TaskExistsError', () => withQueue(async (queue) => {
    await finished(queue, 'again', 'failed');
    await redis.raw.hset(`${queue.name}:task:again`, 'retries', '2', 'custom', 'old');
    const task = await queue.enqueue('add', { a: 1, b: 2 }, { id: 'again' });
    const hash = await redis.raw.hgetall(task.key);
    assert.deepEqual(Object.keys(hash).sort(), BASE, 'no field of the old hash survives');
    assert.equal(hash.function, 'add');
    assert.deepEqual(await queue.pendingIds(), ['again']);
    await assert.rejects(queue.enqueue('add', {}, { id: 'again' }), TaskExistsError);
    await redis.raw.hset(task.key, 'state', 'executing');
    await assert.rejects(queue.enqueue('add', {}, { id: 'again' }), TaskExistsError);
    assert.equal(await redis.raw.hget(task.key, 'function'), 'add');
  }, 'replace'));
});

describe('cancel', () => {
  test('a pending task: its entry leaves pending, the hash finishes cancelled, a message is posted', () => withQueue(async (queue) => {
    const sub = redis.raw.duplicate();
    const messages = [];
    await sub.subscribe(`${queue.name}:results`);
    sub.on('message', (_, message) => messages.push(message));
    try {
      const other = await queue.enqueue('echo', {}, { id: 'stay' });
      const task = await queue.enqueue('echo', {}, { id: 'go' });
      await redis.raw.lpush(`${queue.name}:pending`, task.key); // the full-key form of the entry too
      // Settle into a value at once: the rejection may come before the assertion below looks.
      const waiting = task.wait({ timeout: 10000 }).then(
        () => { throw new Error('wait resolved for a cancelled task'); },
        (error) => error,
      );
      const before = Date.now();
      assert.equal(await task.cancel(), 'cancelled');
      assert.deepEqual(await queue.pendingIds(), [other.id]);
      const hash = await redis.raw.hgetall(task.key);
      assert.equal(hash.state, 'finished');
      assert.equal(hash.result, 'cancelled');
      assert.equal(hash['error-code'], 'cancelled');
      assert.equal(hash['error-exception'], '');
      assert.match(hash['finished-created'], STAMP);
      const score = Number(await redis.raw.zscore(`${queue.name}:failed`, 'go'));
      assert.ok(score >= before - 5 && score <= Date.now() + 5);
      const ttl = await redis.raw.ttl(task.key);  // the default failure-ttl applies to every ending
      assert.ok(ttl > 604_000 && ttl <= 604_800, `ttl ${ttl}`);
      const error = await waiting;
      assert.ok(error instanceof TaskFailedError);
      assert.equal(error.code, 'cancelled');
      for (let i = 0; i < 100 && messages.length === 0; i += 1) await new Promise((resolve) => setTimeout(resolve, 10));
      assert.deepEqual(messages, [task.key]);
      assert.deepEqual(await task.result(), { outcome: 'cancelled', code: 'cancelled', reason: hash['error-reason'], exception: '' });
      assert.equal((await task.info()).outcome, 'cancelled');
      assert.deepEqual(await queue.failedIds(), ['go']);
      assert.equal(await task.cancel(), 'finished');
    } finally {
      sub.disconnect();
    }
  }, 'cancel'));

  test('a scheduled task leaves the scheduled set; a waiting one is cancelled too', () => withQueue(async (queue) => {
    const later = await queue.enqueue('echo', {}, { delay: 60 });
    assert.equal(await later.cancel(), 'cancelled');
    assert.equal(await queue.scheduledCount(), 0);
    const parent = await queue.enqueue('echo', {}, { id: 'p' });
    const child = await queue.enqueue('echo', {}, { id: 'c', dependsOn: parent });
    assert.equal(await child.cancel(), 'cancelled');
    const hash = await redis.raw.hgetall(child.key);
    assert.equal(hash.result, 'cancelled');
    assert.equal(hash['waiting-for'], undefined);
    // a cancelled parent with dependents is due for its follow-ups
    assert.equal(await parent.cancel(), 'cancelled');
    assert.deepEqual(await redis.raw.smembers(`${queue.name}:releasing`), ['p']);
  }, 'cancel-scheduled'));

  test('an executing task gets cancel-requested', () => withQueue(async (queue) => {
    const task = await queue.enqueue('sleep', { seconds: 5 });
    await redis.raw.rpop(`${queue.name}:pending`);
    await redis.raw.hset(task.key, 'state', 'executing', 'worker', 'w1', 'claims', '1',
      'executing-created', '2026-01-01T00:00:00.000000Z');
    const before = Date.now();
    assert.equal(await task.cancel(), 'requested');
    const hash = await redis.raw.hgetall(task.key);
    assert.equal(hash.state, 'executing');
    assert.match(hash['cancel-requested'], STAMP);
    assert.ok(micros(hash['cancel-requested']) >= BigInt(before - 5) * 1000n);
    assert.equal(hash.result, undefined);
    assert.equal((await task.info()).cancelRequested, hash['cancel-requested']);
  }, 'cancel-executing'));

  test('a finished task is left alone; an unknown id rejects with TaskNotFoundError', () => withQueue(async (queue) => {
    const task = await queue.enqueue('echo', {}, { id: 'f' });
    await finishRaw(redis.raw, queue.name, task.key, { value: 1 });
    assert.equal(await task.cancel(), 'finished');
    assert.equal(await redis.raw.hget(task.key, 'result'), 'successful');
    await assert.rejects(queue.task('nobody').cancel(), (error) => {
      assert.ok(error instanceof TaskNotFoundError && error instanceof DothisError);
      assert.equal(error.code, 'task-not-found');
      assert.equal(error.id, 'nobody');
      return true;
    });
  }, 'cancel-finished'));
});

describe('inspection', () => {
  test('pendingIds: oldest first, paged', () => withQueue(async (queue) => {
    assert.deepEqual(await queue.pendingIds(), []);
    await queue.enqueueMany(['a', 'b', 'c', 'd', 'e'].map((id) => ({ fn: 'echo', id })));
    assert.deepEqual(await queue.pendingIds(), ['a', 'b', 'c', 'd', 'e']);
    assert.deepEqual(await queue.pendingIds({ start: 1, count: 2 }), ['b', 'c']);
    assert.deepEqual(await queue.pendingIds({ start: 4, count: 10 }), ['e']);
    assert.deepEqual(await queue.pendingIds({ start: 5 }), []);
    assert.deepEqual(await queue.pendingIds({ count: 0 }), []);
    await assert.rejects(queue.pendingIds({ start: -1 }), { field: 'start' });
    await assert.rejects(queue.pendingIds({ count: 1.5 }), { field: 'count' });
  }, 'pending-ids'));

  test('failedIds and succeededIds: newest first, paged; scheduledCount', () => withQueue(async (queue) => {
    await redis.raw.zadd(`${queue.name}:failed`, 1000, 'f1', 3000, 'f3', 2000, 'f2');
    await redis.raw.zadd(`${queue.name}:succeeded`, 10, 's1', 20, 's2');
    assert.deepEqual(await queue.failedIds(), ['f3', 'f2', 'f1']);
    assert.deepEqual(await queue.failedIds({ start: 1, count: 1 }), ['f2']);
    assert.deepEqual(await queue.succeededIds(), ['s2', 's1']);
    assert.deepEqual(await queue.succeededIds({ start: 2 }), []);
    assert.equal(await queue.scheduledCount(), 0);
  }, 'registries'));

  test('info: retries, losses and timeTaken of a finished task', () => withQueue(async (queue) => {
    await finished(queue, 't', 'failed');
    await redis.raw.hset(`${queue.name}:task:t`, 'retries', '2', 'losses', '1', 'attempts', '3', 'depends-on', '["x"]',
      'callback-of', 'origin');
    const info = await queue.task('t').info();
    assert.equal(info.retries, 2);
    assert.equal(info.losses, 1);
    assert.equal(info.attempts, 3);
    assert.equal(info.timeTaken, 1.5);
    assert.deepEqual(info.dependsOn, ['x']);
    assert.equal(info.callbackOf, 'origin');
    assert.equal(info.outcome, 'failed');
  }, 'info'));
});

describe('delete', () => {
  test('a task leaves with every entry of it; a running one stays; a missing one is not found', () => withQueue(async (queue) => {
    const stay = await queue.enqueue('echo', {}, { id: 'stay' });
    const task = await queue.enqueue('echo', {}, { id: 'go', delay: 3600_000 });
    await redis.raw.lpush(`${queue.name}:pending`, task.key); // a full-key entry too
    await redis.raw.sadd(`${queue.name}:dependents:go`, 'child');
    assert.equal(await task.delete(), 'deleted');
    assert.equal(await redis.raw.exists(task.key), 0);
    assert.deepEqual(await queue.pendingIds(), [stay.id]);
    assert.equal(await redis.raw.zscore(`${queue.name}:scheduled`, 'go'), null);
    assert.equal(await redis.raw.sismember(`${queue.name}:releasing`, 'go'), 1, 'its dependents are released');
    await assert.rejects(task.delete(), TaskNotFoundError);
    await redis.raw.hset(stay.key, 'state', 'executing');
    assert.equal(await stay.delete(), 'running');
    assert.equal(await redis.raw.hget(stay.key, 'state'), 'executing');
  }, 'delete'));
});
