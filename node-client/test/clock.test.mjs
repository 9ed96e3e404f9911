// One clock (SPEC.md 9.8): the producer measures its offset to Redis's TIME once per connection and
// writes every time on Redis's clock. Unit tests of Clock with a fake TIME, then integration tests
// against a private redis-server with this process's clock made 10 minutes fast (Date.now mocked).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { ReplyError } from 'ioredis';

import { Queue } from '../dist/esm/index.js';
import { Clock } from '../dist/esm/clock.js';
import { startRedis, uniqueQueue, until } from './support/redis.mjs';

const AHEAD_MS = 600_000;

/** Microseconds since the epoch of a protocol timestamp. */
const micros = (stamp) => BigInt(Date.parse(`${stamp.slice(0, 19)}Z`)) * 1000n + BigInt(stamp.slice(20, 26));

/** A Clock on a fake server: `reply()` answers each TIME (or throws); `local` is this machine's clock. */
function fakeClock({ reply, local }) {
  const calls = { time: 0 };
  const warnings = [];
  const redis = { time: async () => { calls.time += 1; return reply(); } };
  const clock = new Clock({
    run: async (command) => command(redis), url: 'redis://fake:6379/0', local, warn: (message) => { warnings.push(message); },
  });
  return { clock, calls, warnings };
}

/** A local clock that advances 400 µs per reading from `start` (µs). */
function ticking(start) {
  let now = start;
  return () => { const value = now; now += 400n; return value; };
}

describe('Clock (fake TIME)', () => {
  test('offset = redis - (before + after) / 2, applied to now()', async () => {
    // before = 1_000_000_000_000_000, after = +400 µs: the middle is +200 µs; Redis says +5 s 200 µs.
    const { clock, warnings } = fakeClock({ reply: () => ['1000000005', '200'], local: ticking(1_000_000_000_000_000n) });
    assert.equal(clock.measured, false);
    const now = await clock.read();
    assert.equal(clock.measured, true);
    assert.equal(clock.offsetMs, 5000);
    assert.equal(now, 1_000_000_000_000_800n + 5_000_000n); // the third reading plus the offset
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /this machine's clock is wrong: it is 5000 ms behind the clock of Redis at redis:\/\/fake:6379\/0 \(offset 5000 ms\)/);
  });

  test('concurrent first calls share one TIME; an offset within 1 s is not worth a warning', async () => {
    let answer;
    const gate = new Promise((resolve) => { answer = resolve; });
    const { clock, calls, warnings } = fakeClock({ reply: () => gate, local: ticking(2_000_000_000_000_000n) });
    const reads = Array.from({ length: 20 }, () => clock.read());
    answer(['2000000000', '999000']); // about 1 s ahead of the local clock: no warning (|offset| <= 1000 ms)
    await Promise.all(reads);
    assert.equal(calls.time, 1);
    await clock.read();
    assert.equal(calls.time, 1);
    assert.ok(Math.abs(clock.offsetMs - 999) < 1, String(clock.offsetMs));
    assert.deepEqual(warnings, []);
  });

  test('a reconnection measures again; the warning is given once', async () => {
    let redisNow = 3_000_000_000n;
    const { clock, calls, warnings } = fakeClock({
      reply: () => { redisNow += 1n; return [String(redisNow), '0']; }, local: ticking(1_000_000_000_000_000n),
    });
    await clock.read();
    clock.reconnected();
    assert.equal(clock.measured, false);
    await clock.read();
    assert.equal(calls.time, 2);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /ms behind the clock of Redis/);
  });

  test('a refused TIME (NOPERM) falls back to offset 0 and warns once', async () => {
    const { clock, calls, warnings } = fakeClock({
      reply: () => { throw new ReplyError("NOPERM User producer has no permissions to run the 'time' command"); },
      local: () => 1_000_000_000_000_000n,
    });
    assert.equal(await clock.read(), 1_000_000_000_000_000n);
    assert.equal(clock.offsetMs, 0);
    assert.equal(clock.measured, true);
    clock.reconnected();
    await clock.read();
    assert.equal(calls.time, 2);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /cannot read the clock of Redis at redis:\/\/fake:6379\/0 \(TIME: NOPERM .*\).*offset 0/);
  });

  test('a connection failure rejects and is not kept: the next call measures again', async () => {
    let fail = true;
    const { clock, calls, warnings } = fakeClock({
      reply: () => { if (fail) throw new Error('connect ECONNREFUSED'); return ['1000000000', '0']; },
      local: () => 1_000_000_000_000_000n,
    });
    await assert.rejects(clock.read(), /ECONNREFUSED/);
    assert.equal(clock.measured, false);
    fail = false;
    assert.equal(await clock.read(), 1_000_000_000_000_000n);
    assert.equal(calls.time, 2);
    assert.deepEqual(warnings, []);
  });
});

describe('Queue on the Redis clock', () => {
  let redis;
  before(async () => { redis = await startRedis(); });
  after(async () => { await redis?.stop(); });

  /** Redis's TIME in microseconds. */
  const redisMicros = async () => {
    const [seconds, us] = await redis.raw.time();
    return BigInt(seconds) * 1_000_000n + BigInt(us);
  };

  /** Runs `run(queue)` on a fresh queue, closing it after. */
  async function withQueue(run, options = {}) {
    const queue = new Queue(uniqueQueue('clock'), { url: redis.url, ...options });
    try {
      return await run(queue);
    } finally {
      await queue.close();
    }
  }

  test('a clock 10 minutes fast: pending-created, delay and cancel follow Redis, one warning', async (t) => {
    const warn = t.mock.method(console, 'warn', () => undefined);
    const realNow = Date.now;
    t.mock.method(Date, 'now', () => realNow() + AHEAD_MS);
    await withQueue(async (queue) => {
      const start = await redisMicros();
      const task = await queue.enqueue('echo', {}, { delay: 120 });
      const plain = await queue.enqueue('echo');
      const end = await redisMicros();
      const hash = await redis.raw.hgetall(task.key);
      const created = micros(hash['pending-created']);
      assert.ok(created >= start - 5_000n && created <= end + 5_000n, `pending-created ${hash['pending-created']} is not Redis's now`);
      const score = BigInt(await redis.raw.zscore(`${queue.name}:scheduled`, task.id));
      assert.ok(score >= (start / 1000n) + 120_000n - 5n && score <= (end / 1000n) + 120_000n + 5n,
        `due ${score} is not Redis's now + 120 s (local clock + 120 s would be ${AHEAD_MS} ms later)`);
      assert.equal(micros(hash['scheduled-for']), created + 120_000_000n);
      const plainCreated = micros(await redis.raw.hget(plain.key, 'pending-created'));
      assert.ok(plainCreated >= start - 5_000n && plainCreated <= end + 5_000n);

      assert.equal(await task.cancel(), 'cancelled');
      const failedScore = BigInt(await redis.raw.zscore(`${queue.name}:failed`, task.id));
      const afterCancel = await redisMicros();
      assert.ok(failedScore >= start / 1000n - 5n && failedScore <= afterCancel / 1000n + 5n, `failed score ${failedScore}`);
    });
    assert.equal(warn.mock.callCount(), 1);
    const [message] = warn.mock.calls[0].arguments;
    assert.match(message, /this machine's clock is wrong/);
    const offset = Number(/\(offset (-?\d+) ms\)/.exec(message)?.[1]);
    assert.ok(Math.abs(offset + AHEAD_MS) < 1000, message);
    assert.match(message, new RegExp(`redis://127\\.0\\.0\\.1:${redis.port}/0`));
  });

  /** Counts the commands the server runs, by name, from a MONITOR connection. */
  async function monitored(run) {
    const monitor = await redis.raw.monitor();
    monitor.on('error', () => undefined);
    const seen = [];
    monitor.on('monitor', (_time, args) => { seen.push(String(args[0]).toUpperCase()); });
    try {
      await run(seen);
      // MONITOR shows commands in the order the server ran them: once the marker is seen, all before it are.
      await redis.raw.echo('marker');
      await until(() => seen.includes('ECHO'), { ms: 5000, what: 'MONITOR to show the marker' });
      return seen;
    } finally {
      monitor.disconnect();
    }
  }

  test('concurrent first enqueues send exactly one TIME, before any script; no warning at offset ~0', async (t) => {
    const warn = t.mock.method(console, 'warn', () => undefined);
    const seen = await monitored(() => withQueue(async (queue) => {
      await Promise.all([
        ...Array.from({ length: 10 }, (_, i) => queue.enqueue('echo', { i })),
        queue.enqueueMany([{ fn: 'echo' }, { fn: 'echo', delay: 5 }]),
      ]);
      await queue.enqueue('echo');
      assert.equal(await queue.length(), 12);
    }));
    assert.equal(seen.filter((name) => name === 'TIME').length, 1, seen.join(' '));
    const firstScript = seen.findIndex((name) => name === 'EVALSHA' || name === 'EVAL');
    assert.ok(seen.indexOf('TIME') !== -1 && seen.indexOf('TIME') < firstScript, seen.join(' '));
    assert.equal(warn.mock.callCount(), 0);
  });

  test('after a reconnection the next enqueue measures again', async () => {
    const seen = await monitored((commands) => withQueue(async (queue) => {
      await queue.enqueue('echo');
      const clients = await redis.raw.client('LIST');
      const id = /id=(\d+) .*name=dothis-producer/.exec(clients)?.[1];
      assert.ok(id, clients);
      await redis.raw.client('KILL', 'ID', id);
      // Enqueue until the new connection has measured (a call in the reconnection gap may fail).
      await until(async () => {
        await queue.enqueue('echo').catch(() => undefined);
        return commands.filter((name) => name === 'TIME').length >= 2;
      }, { ms: 5000, every: 50, what: 'a second TIME after the reconnection' });
    }));
    assert.equal(seen.filter((name) => name === 'TIME').length, 2, seen.join(' '));
  });

  test('a user without TIME (NOPERM): enqueue works with offset 0, one warning', async (t) => {
    const warn = t.mock.method(console, 'warn', () => undefined);
    await redis.raw.acl('SETUSER', 'notime', 'on', '>secret', '~*', '&*', '+@all', '-time');
    try {
      const url = `redis://notime:secret@127.0.0.1:${redis.port}/0`;
      await withQueue(async (queue) => {
        const before = Date.now();
        const first = await queue.enqueue('echo');
        await queue.enqueue('echo', {}, { delay: 60 });
        const created = Number(micros(await redis.raw.hget(first.key, 'pending-created')) / 1000n);
        assert.ok(created >= before - 2 && created <= Date.now() + 2);
        assert.equal(await queue.length(), 1);
        assert.equal(await queue.scheduledCount(), 1);
      }, { url });
      assert.equal(warn.mock.callCount(), 1);
      const [message] = warn.mock.calls[0].arguments;
      assert.match(message, /cannot read the clock of Redis at redis:\/\/notime:\*\*\*\*@127\.0\.0\.1:\d+\/0 \(TIME: NOPERM/);
      assert.match(message, /offset 0/);
    } finally {
      await redis.raw.acl('DELUSER', 'notime');
    }
  });
});
