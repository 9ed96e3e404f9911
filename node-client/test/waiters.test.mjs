// Integration: waits never hang. A results subscription that dies silently (a NAT or firewall
// forgets the connection: no error, no message, ever) neither keeps wait() from resolving nor makes
// it overshoot its timeout. The dead connection is real: the Queue talks to redis-server through a
// loopback TCP proxy of the test's own that can stop forwarding a connection's bytes, both ways,
// without closing it; the task is finished over a direct connection.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';

import { Queue, WaitTimeoutError } from '../dist/esm/index.js';
import { Link } from '../dist/esm/connection.js';
import { ResultWaits, WAIT_TIMINGS } from '../dist/esm/waits.js';
import { finishRaw, startRedis, uniqueQueue, until } from './support/redis.mjs';

let redis;
before(async () => { redis = await startRedis(); });
after(async () => { await redis?.stop(); });

/**
 * A proxy to the test's redis-server. blackHoleSubscribers() makes the connections that sent
 * SUBSCRIBE drop every byte from then on, both ways, closing nothing. New connections forward.
 */
async function startProxy(port) {
  const links = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1');
    const link = { client, upstream, sent: '', dead: false };
    links.add(link);
    client.on('data', (chunk) => {
      if (link.sent.length < 4096) link.sent += chunk.toString('latin1');
      if (!link.dead) upstream.write(chunk);
    });
    upstream.on('data', (chunk) => { if (!link.dead) client.write(chunk); });
    const close = () => {
      links.delete(link);
      if (!link.dead) { client.destroy(); upstream.destroy(); }
    };
    client.on('close', close);
    upstream.on('close', close);
    client.on('error', () => undefined);
    upstream.on('error', () => undefined);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const subscribers = () => [...links].filter((link) => !link.dead && /SUBSCRIBE/i.test(link.sent));
  return {
    url: `redis://127.0.0.1:${server.address().port}/0`,
    subscribers,
    blackHoleSubscribers() {
      const found = subscribers();
      for (const link of found) link.dead = true;
      return found.length;
    },
    async close() {
      for (const link of links) { link.client.destroy(); link.upstream.destroy(); }
      server.close();
    },
  };
}

async function numsub(channel) {
  const [, count] = await redis.raw.pubsub('NUMSUB', channel);
  return Number(count);
}

/** `promise`, or a rejection naming `what` after `ms`. */
function within(promise, ms, what) {
  let timer;
  const late = new Promise((_, reject) => { timer = setTimeout(() => { reject(new Error(`${what}: still pending after ${ms} ms`)); }, ms); });
  return Promise.race([promise, late]).finally(() => { clearTimeout(timer); });
}

async function deadSubscription(proxy, channel) {
  await until(async () => proxy.subscribers().length > 0 && await numsub(channel) > 0, { what: 'the subscription' });
  assert.equal(proxy.blackHoleSubscribers(), 1);
}

/** A stand-in for the queue's reads: HMGET over a direct connection (only the subscription is proxied here). */
const directRead = (key, fields) => redis.raw.hmget(key, ...fields);

describe('waits behind a dead subscription', () => {
  let proxy;
  before(async () => { proxy = await startProxy(redis.port); });
  after(async () => { await proxy.close(); });

  test('the default timings bound a wait', () => {
    assert.equal(WAIT_TIMINGS.recheckMaxMs, 5000);
    assert.ok(WAIT_TIMINGS.healthIntervalMs + WAIT_TIMINGS.healthTimeoutMs <= 10000);
  });

  test('a wait without a timeout resolves when its message is lost', async () => {
    const queue = new Queue(uniqueQueue('lost'), { url: proxy.url });
    try {
      const task = await queue.enqueue('echo');
      const waiting = task.wait();
      waiting.catch(() => {});
      await deadSubscription(proxy, `${queue.name}:results`);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const finished = Date.now();
      await finishRaw(redis.raw, queue.name, task.key, { value: 'done' });
      assert.equal(await within(waiting, WAIT_TIMINGS.recheckMaxMs + 3000, 'wait()'), 'done');
      assert.ok(Date.now() - finished < WAIT_TIMINGS.recheckMaxMs + 500, `${Date.now() - finished} ms`);
    } finally {
      await queue.close();
    }
  });

  test('a wait with a timeout resolves with the value within it, not with WaitTimeoutError', async () => {
    const queue = new Queue(uniqueQueue('timeout'), { url: proxy.url });
    try {
      const task = await queue.enqueue('echo');
      const waiting = task.wait({ timeout: 9000 });
      waiting.catch(() => {});
      await deadSubscription(proxy, `${queue.name}:results`);
      await finishRaw(redis.raw, queue.name, task.key, { value: 'in time' });
      assert.equal(await waiting, 'in time');
    } finally {
      await queue.close();
    }
  });

  test('a dead subscriber is found by PING, dropped and made again', async () => {
    const channel = `${uniqueQueue('health')}:results`;
    const link = new Link({ url: proxy.url, connectTimeout: 3000, connectionName: 'dothis-results' });
    // No re-reading on a timer here: only the health check can end these waits.
    const waits = new ResultWaits(link, channel, directRead,
      { recheckFirstMs: 3_600_000, recheckMaxMs: 3_600_000, healthIntervalMs: 300, healthTimeoutMs: 700 });
    const queueName = channel.slice(0, -':results'.length);
    try {
      const key = `${queueName}:task:one`;
      await redis.raw.hset(key, 'state', 'pending', 'function', 'echo');
      const waiting = waits.wait('one', key, {});
      waiting.catch(() => {});
      await deadSubscription(proxy, channel);
      await finishRaw(redis.raw, queueName, key, { value: 'seen after all' });
      assert.equal(await within(waiting, 5000, 'wait()'), 'seen after all');
      assert.ok(waits.deadConnections >= 1);
      // the new subscription carries the next message at once
      await until(() => proxy.subscribers().length === 1, { what: 'a new subscription' });
      const next = `${queueName}:task:two`;
      await redis.raw.hset(next, 'state', 'pending', 'function', 'echo');
      const second = waits.wait('two', next, {});
      second.catch(() => {});
      await new Promise((resolve) => setTimeout(resolve, 200));
      await finishRaw(redis.raw, queueName, next, { value: 2 });
      assert.equal(await within(second, 2000, 'the second wait()'), 2);
    } finally {
      waits.rejectAll(new Error('closed'));
      await link.close();
    }
  });

  test('a timeout is kept with a dead subscription', async () => {
    const queue = new Queue(uniqueQueue('keep'), { url: proxy.url });
    try {
      const task = await queue.enqueue('echo');
      const started = Date.now();
      const waiting = task.wait({ timeout: 1500 });
      waiting.catch(() => {});
      await deadSubscription(proxy, `${queue.name}:results`);
      await assert.rejects(waiting, WaitTimeoutError);
      const took = Date.now() - started;
      assert.ok(took >= 1495 && took < 2000, `${took} ms`);
    } finally {
      await queue.close();
    }
  });
});
