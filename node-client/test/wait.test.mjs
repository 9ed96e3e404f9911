// Integration: waiting for results over the shared <queue>:results subscription.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { DothisError, Queue, TaskFailedError, WaitTimeoutError } from '../dist/esm/index.js';
import { finishRaw, startRedis, uniqueQueue, until } from './support/redis.mjs';

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

/** Clients of the test server by name (CLIENT LIST), excluding this test's raw connection. */
async function clientsByName() {
  const list = await redis.raw.client('LIST');
  const names = {};
  for (const line of list.trim().split('\n')) {
    const name = /(?:^| )name=(\S*)/.exec(line)?.[1] ?? '';
    names[name] = (names[name] ?? 0) + 1;
  }
  return names;
}

async function subscribers(channel) {
  const [, count] = await redis.raw.pubsub('NUMSUB', channel);
  return Number(count);
}

describe('wait', () => {
  test('resolves with the value once the worker posts it', () => withQueue(async (queue) => {
    const task = await queue.enqueue('echo', { text: 'ooh yeeah' });
    const waiting = task.wait({ timeout: 5000 });
    await until(() => subscribers(`${queue.name}:results`), { what: 'the subscription' });
    await finishRaw(redis.raw, queue.name, task.key, { value: 'ooh yeeah' });
    assert.equal(await waiting, 'ooh yeeah');
  }, 'value'));

  test('every JSON return value round-trips, null, 0, false and "" included', () => withQueue(async (queue) => {
    for (const value of [null, 0, false, '', [1, { a: 'b' }], { nested: { deep: [true] } }, 1.5, 'ünï😀']) {
      const task = await queue.enqueue('echo');
      await finishRaw(redis.raw, queue.name, task.key, { value });
      assert.deepEqual(await task.wait({ timeout: 5000 }), value);
    }
  }, 'values'));

  test('a task already finished resolves from the hash', () => withQueue(async (queue) => {
    const task = await queue.enqueue('echo');
    await redis.raw.hset(task.key, 'state', 'finished', 'result-value', '42', 'result', 'successful');
    assert.equal(await task.wait({ timeout: 5000 }), 42);
  }, 'done'));

  test('1,000 concurrent waits share one subscriber connection', () => withQueue(async (queue) => {
    const channel = `${queue.name}:results`;
    const tasks = await queue.enqueueMany(Array.from({ length: 1000 }, (_, i) => ({ fn: 'add', args: { a: i, b: 1 } })));
    const waits = tasks.map((task) => task.wait({ timeout: 20000 }));
    // a second waiter on the same task shares the dispatch
    const twice = tasks[7].wait({ timeout: 20000 });
    await until(() => subscribers(channel), { what: 'the subscription' });
    assert.equal(await subscribers(channel), 1);
    const clients = await clientsByName();
    assert.equal(clients['dothis-results'], 1, JSON.stringify(clients));
    assert.equal(clients['dothis-producer'], 1, JSON.stringify(clients));
    assert.equal(Object.values(clients).reduce((a, b) => a + b, 0), 3, JSON.stringify(clients)); // + this test's own
    // the worker side, in reverse order, pipelined
    const pipeline = redis.raw.pipeline();
    for (let i = tasks.length - 1; i >= 0; i -= 1) {
      pipeline.hset(tasks[i].key, 'state', 'finished', 'result-value', String(i + 1), 'result', 'successful');
      pipeline.publish(channel, tasks[i].key);
    }
    await pipeline.exec();
    const values = await Promise.all(waits);
    assert.deepEqual(values, tasks.map((_, i) => i + 1));
    assert.equal(await twice, 8);
    assert.equal(await subscribers(channel), 1);
    const later = await clientsByName();
    assert.equal(later['dothis-results'], 1);
    assert.equal(later['dothis-producer'], 1);
  }, 'thousand'));

  test('a timeout rejects with WaitTimeoutError and leaves the task alone', () => withQueue(async (queue) => {
    const task = await queue.enqueue('echo');
    const started = Date.now();
    await assert.rejects(task.wait({ timeout: 200 }), (error) => {
      assert.ok(error instanceof WaitTimeoutError && error instanceof DothisError);
      assert.equal(error.code, 'wait-timeout');
      assert.equal(error.id, task.id);
      assert.equal(error.timeout, 200);
      return true;
    });
    assert.ok(Date.now() - started >= 195);
    assert.equal(await task.state(), 'pending');
    // a later wait still works
    const again = task.wait({ timeout: 5000 });
    await finishRaw(redis.raw, queue.name, task.key, { value: 'late' });
    assert.equal(await again, 'late');
  }, 'timeout'));

  test('an AbortSignal cancels a wait', () => withQueue(async (queue) => {
    const task = await queue.enqueue('echo');
    const controller = new AbortController();
    const waiting = task.wait({ signal: controller.signal });
    controller.abort(new Error('no longer needed'));
    await assert.rejects(waiting, /no longer needed/);
    await assert.rejects(task.wait({ signal: AbortSignal.abort() }), { name: 'AbortError' });
  }, 'abort'));

  test('a failed task rejects with TaskFailedError carrying code, reason and exception', () => withQueue(async (queue) => {
    const task = await queue.enqueue('fail', { message: 'boom' });
    // Handled at once: the rejection may come while finishRaw is still being awaited.
    const waiting = task.wait({ timeout: 5000 });
    waiting.catch(() => {});
    await until(() => subscribers(`${queue.name}:results`), { what: 'the subscription' });
    const exception = 'Traceback (most recent call last):\n  ...\nRuntimeError: boom';
    await finishRaw(redis.raw, queue.name, task.key, { failed: true, code: 'exception', reason: 'boom', exception });
    await assert.rejects(waiting, (error) => {
      assert.ok(error instanceof TaskFailedError && error instanceof DothisError);
      assert.equal(error.code, 'exception');
      assert.equal(error.reason, 'boom');
      assert.equal(error.exception, exception);
      assert.equal(error.id, task.id);
      assert.match(error.message, /failed \(exception\): boom/);
      return true;
    });
    assert.deepEqual(await task.result(), { outcome: 'failed', code: 'exception', reason: 'boom', exception });
    assert.deepEqual((await task.info()).error, { code: 'exception', reason: 'boom', exception });
  }, 'failed'));

  test('a result posted while the subscriber was disconnected is read on reconnect', () => withQueue(async (queue) => {
    const task = await queue.enqueue('echo');
    const waiting = task.wait({ timeout: 10000 });
    await until(() => subscribers(`${queue.name}:results`), { what: 'the subscription' });
    // kill the subscriber and post the result in the same pipeline: the message reaches nobody
    const [[, killed], , [, received]] = await redis.raw.pipeline()
      .client('KILL', 'TYPE', 'pubsub')
      .hset(task.key, 'state', 'finished', 'result-value', '"after reconnect"', 'result', 'successful')
      .publish(`${queue.name}:results`, task.key)
      .exec();
    assert.equal(killed, 1);
    assert.equal(received, 0);
    assert.equal(await waiting, 'after reconnect');
    // The wait's own re-read may have found the result before the subscriber was back: it comes
    // back either way. (waiters.test.mjs has the reconnect's re-read alone, with no timer.)
    await until(async () => await subscribers(`${queue.name}:results`) === 1, { what: 'the subscription again' });
  }, 'reconnect'));

  test('a result arriving while the command connection is down is still read', () => withQueue(async (queue) => {
    const task = await queue.enqueue('echo');
    const waiting = task.wait({ timeout: 10000 });
    await until(() => subscribers(`${queue.name}:results`), { what: 'the subscription' });
    const producer = (await redis.raw.client('LIST')).split('\n').find((line) => line.includes(' name=dothis-producer '));
    const id = /^id=(\d+)/.exec(producer)[1];
    await redis.raw.pipeline()
      .client('KILL', 'ID', id)
      .hset(task.key, 'state', 'finished', 'result-value', '"read after the kill"', 'result', 'successful')
      .publish(`${queue.name}:results`, task.key)
      .exec();
    assert.equal(await waiting, 'read after the kill');
  }, 'producer-kill'));

  test('messages for other tasks and channels are ignored', () => withQueue(async (queue) => {
    const task = await queue.enqueue('echo');
    const other = await queue.enqueue('echo');
    const waiting = task.wait({ timeout: 5000 });
    await until(() => subscribers(`${queue.name}:results`), { what: 'the subscription' });
    await finishRaw(redis.raw, queue.name, other.key, { value: 'other' });
    await redis.raw.publish(`${queue.name}:results`, 'not-a-task-key');
    await redis.raw.publish(`${queue.name}:results`, task.key); // not finished yet: keeps waiting
    await finishRaw(redis.raw, queue.name, task.key, { value: 'mine' });
    assert.equal(await waiting, 'mine');
  }, 'ignore'));

  test('a fresh wait takes the outcome message and reads no hash after it', () => withQueue(async (queue) => {
    const task = await queue.enqueue('echo');
    const waiting = task.wait({ timeout: 5000 });
    await until(() => subscribers(`${queue.name}:outcomes`), { what: 'the outcomes subscription' });
    // the hash has no result: only the message can tell this value
    await redis.raw.publish(`${queue.name}:outcomes`, JSON.stringify({ task: task.key, result: 'successful', 'result-value': '{"from":"message"}' }));
    assert.deepEqual(await waiting, { from: 'message' });
  }, 'outcome'));

  test('a failure in the outcome message rejects with its code, reason and exception', () => withQueue(async (queue) => {
    const task = await queue.enqueue('echo');
    const waiting = task.wait({ timeout: 5000 });
    await until(() => subscribers(`${queue.name}:outcomes`), { what: 'the outcomes subscription' });
    await redis.raw.publish(`${queue.name}:outcomes`, JSON.stringify({
      task: task.key, result: 'failed', 'error-code': 'exception', 'error-reason': 'ValueError: no', 'error-exception': 'Traceback',
    }));
    await assert.rejects(waiting, (error) => error instanceof TaskFailedError && error.code === 'exception'
      && error.reason === 'ValueError: no' && error.exception === 'Traceback');
  }, 'outcome-failed'));

  test('a wait that is not fresh, or a message without a result, reads the hash', () => withQueue(async (queue) => {
    const custom = await queue.enqueue('echo', {}, { id: `custom-${Date.now()}` }); // an id used before may hold an old ending
    const fresh = await queue.enqueue('echo');
    const handle = queue.task(fresh.id); // a handle made from an id: not fresh
    const waits = [custom.wait({ timeout: 5000 }), handle.wait({ timeout: 5000 }), fresh.wait({ timeout: 5000 })];
    await until(() => subscribers(`${queue.name}:outcomes`), { what: 'the outcomes subscription' });
    for (const task of [custom, fresh]) {
      await redis.raw.publish(`${queue.name}:outcomes`, JSON.stringify({ task: task.key, result: 'successful', 'result-value': '"message"' }));
    }
    await redis.raw.publish(`${queue.name}:outcomes`, JSON.stringify({ task: custom.key })); // over the limit: the key alone
    await redis.raw.publish(`${queue.name}:outcomes`, 'not json');
    assert.equal(await waits[2], 'message');
    for (const task of [custom, fresh]) await finishRaw(redis.raw, queue.name, task.key, { value: 'hash' });
    assert.deepEqual(await Promise.all(waits.slice(0, 2)), ['hash', 'hash']);
    // fresh saw an ending: its next wait reads the hash, whatever a message says
    const again = fresh.wait({ timeout: 5000 });
    await redis.raw.publish(`${queue.name}:outcomes`, JSON.stringify({ task: fresh.key, result: 'successful', 'result-value': '"stale"' }));
    assert.equal(await again, 'hash');
  }, 'outcome-hash'));

  test('a refused outcomes subscription leaves waits on the results message', async () => {
    const name = uniqueQueue('outcome-acl');
    const user = `results-only-${Date.now()}`;
    await redis.raw.call('ACL', 'SETUSER', user, 'on', '>pw', 'resetchannels', `&${name}:results`, '+@all', '~*');
    const queue = new Queue(name, { url: redis.url.replace('redis://', `redis://${user}:pw@`) });
    try {
      const task = await queue.enqueue('echo');
      const waiting = task.wait({ timeout: 5000 });
      await until(() => subscribers(`${name}:results`), { what: 'the results subscription' });
      assert.equal(await subscribers(`${name}:outcomes`), 0);
      await finishRaw(redis.raw, name, task.key, { value: 'still' });
      assert.equal(await waiting, 'still');
    } finally {
      await queue.close();
      await redis.raw.call('ACL', 'DELUSER', user);
    }
  });
});
