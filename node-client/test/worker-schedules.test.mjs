// Periodic and cron schedules of the Node worker (SPEC.md 5.15): occurrences computed as the
// Python worker computes them (croniter), each fired once across two `dothis-worker` processes,
// the id, args and queue of an occurrence, arming, and a missed occurrence fired once on return.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

import { InvalidArgumentsError, Queue, Worker, withParams } from '../dist/esm/index.js';
import { checkCron, checkSchedules, Schedule } from '../dist/esm/worker/scheduler.js';
import { findPython, runPython, spawnWorker, startRedis, uniqueQueue, until } from './support/redis.mjs';

const python = await findPython();
const CLI = fileURLToPath(new URL('../dist/esm/worker/cli.js', import.meta.url));
const schedule = (spec, offered = null) => Schedule.from(spec, 'schedules[0]', new Map(), offered);
const iso = (ms) => new Date(ms).toISOString().replace('Z', '000Z');

describe('occurrences', () => {
  const CRONS = ['0 5 * * tue', '*/15 * * * *', '0 0 13 * fri', '30 2 * jan,jul mon-fri', '0 0 * * 7', '0 0 1-7 * sun',
    '0 0 29 2 *', '0 12 * * 1-5/2', '1-59/10 * * * *', '0 9-17/4 * * *', '59 23 31 dec *'];
  const INSTANTS = [Date.UTC(2026, 0, 6, 5, 0, 0, 0), Date.UTC(2026, 0, 6, 5, 0, 0, 500), Date.UTC(2025, 2, 1, 0, 0, 1),
    Date.UTC(2024, 1, 29, 23, 59, 59, 999), Date.UTC(2026, 11, 31, 23, 59, 30)];

  test('a period: multiples of it since the epoch; the task id is <name>@<occurrence as a timestamp>', () => {
    const tick = schedule({ function: 'tick', every: 25 });
    assert.equal(tick.name, 'tick');
    assert.equal(tick.latest(1_767_225_612_345), 1_767_225_600_000);
    assert.equal(tick.latest(1_767_225_600_000), 1_767_225_600_000);
    assert.equal(tick.taskId(1_767_225_600_000), 'tick@2026-01-01T00:00:00.000000Z');
    assert.equal(schedule({ function: 'f', every: 0.25 }).latest(1_000_999), 1_000_750);
  });

  test('a cron expression: the times croniter gives for the same expression, in UTC', { skip: python === null && 'no Python' }, async () => {
    const node = CRONS.map((cron) => INSTANTS.map((at) => schedule({ function: 'f', cron }).latest(at)));
    const out = await runPython(python, [
      'import json, sys',
      'from datetime import UTC, datetime',
      'from croniter import croniter',
      `crons, instants = ${JSON.stringify(CRONS)}, ${JSON.stringify(INSTANTS)}`,
      'print(json.dumps([[int(croniter(c, datetime.fromtimestamp(at / 1000, UTC)).get_prev(datetime).timestamp() * 1000)',
      '                   for at in instants] for c in crons]))',
    ].join('\n'));
    assert.deepEqual(node, JSON.parse(out));
  });

  test('cron expressions have the five POSIX fields; bad ones are refused with the reason', () => {
    assert.equal(checkCron('0 5 * * tue'), '0 5 * * tue');
    for (const bad of ['* * * *', '0 * * * * *', '61 * * * *', '0 0 * * 8', 'x y z a b', '']) {
      assert.throws(() => checkCron(bad, 'cron'), (error) => error instanceof InvalidArgumentsError && error.field === 'cron', bad);
    }
  });

  test('a declaration is checked: every or cron, name, function, args, queue, unique names', () => {
    const field = (spec, offered = null) => {
      try {
        schedule(spec, offered);
      } catch (error) {
        assert.ok(error instanceof InvalidArgumentsError, String(error));
        return error.field;
      }
      return null;
    };
    assert.equal(field({ function: 'f' }), 'schedules[0]');
    assert.equal(field({ function: 'f', every: 1, cron: '* * * * *' }), 'schedules[0]');
    assert.equal(field({ function: 'f', every: 0 }), 'schedules[0].every');
    assert.equal(field({ function: 'f', every: '5' }), 'schedules[0].every');
    assert.equal(field({ function: '', every: 1 }), 'schedules[0].function');
    assert.equal(field({ function: 'f', every: 1 }, new Set(['g'])), 'schedules[0].function');
    assert.equal(field({ function: 'f', every: 1, name: 'a b' }), 'schedules[0].name');
    assert.equal(field({ function: 'f', every: 1, name: 'n'.repeat(201) }), 'schedules[0].name');
    assert.equal(field({ function: 'f', every: 1, args: [1] }), 'schedules[0].args');
    assert.equal(field({ function: 'f', every: 1, queue: 'has space' }), 'queue name');
    assert.equal(field({ function: 'f', every: 1, name: 'n'.repeat(200), args: { a: [1, 'x'] }, queue: 'q' }), null);
    assert.throws(() => checkSchedules([{ function: 'f', every: 1 }, { function: 'f', cron: '* * * * *' }], 'schedules', new Map(), null),
      /two schedules are named "f"/);
    const report = withParams(['full'], () => 1);
    assert.equal(new Worker('q', { functions: { report }, schedules: [{ function: report, every: 1 }], log: () => undefined }).id.length > 0, true);
    assert.throws(() => new Worker('q', { functions: { report }, schedules: [{ function: 'other', every: 1 }] }), { field: 'schedules[0].function' });
  });
});

// The module two worker processes load: a schedule every half second, declared as its export.
const MODULE = `
export function stamp({ label }, ctx) { return label + ' ' + ctx.id; }
stamp.params = ['label'];
export const schedules = [{ name: 'half', every: 0.5, function: stamp, args: { label: 'hi' }, queue: process.env.SCHEDULE_QUEUE }];
`;

describe('dothis-worker processes with a module that exports schedules', () => {
  let redis;
  let dir;
  let moduleFile;

  before(async () => {
    redis = await startRedis();
    dir = await mkdtemp(path.join(tmpdir(), 'dothis-schedules-test-'));
    moduleFile = path.join(dir, 'tasks.mjs');
    await writeFile(moduleFile, MODULE);
  });

  after(async () => {
    await redis.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('two workers fire each occurrence once: task <name>@<occurrence>, the schedule\'s function and args, run once', async () => {
    const queue = uniqueQueue('periodic');
    process.env.SCHEDULE_QUEUE = queue;
    const start = () => spawnWorker(process.execPath, [CLI, '--url', redis.url, '--queue', queue, '--reap-ms', '500', moduleFile]);
    const workers = [start(), start()];
    try {
      const ended = async () => {
        const keys = await redis.raw.keys(`${queue}:task:*`);
        const rows = await Promise.all(keys.map(async (key) => [key, await redis.raw.hgetall(key)]));
        return rows.filter(([, hash]) => hash.result === 'successful');
      };
      const rows = await until(async () => { const done = await ended(); return done.length >= 4 && done; },
        { ms: 15000, what: 'four occurrences run' });
      const fired = workers.flatMap((worker) => [...worker.log().matchAll(/fired (\S+) \(stamp\)/g)].map((match) => match[1]));
      assert.equal(new Set(fired).size, fired.length, `an occurrence fired twice: ${fired.join(' ')}`);
      assert.equal(workers.map((worker) => (worker.log().match(/armed/g) ?? []).length).reduce((a, b) => a + b), 1, 'armed once');
      for (const [key, hash] of rows) {
        const id = key.slice(`${queue}:task:`.length);
        const match = /^half@(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})000Z$/.exec(id);
        assert.ok(match, id);
        assert.equal(Date.parse(`${match[1]}Z`) % 500, 0, `${id} is a multiple of the period`);
        assert.ok(fired.includes(id), `${id} was fired by one of the workers`);
        assert.equal(hash.function, 'stamp');
        assert.deepEqual(JSON.parse(hash.args), { label: 'hi' });
        assert.equal(hash.claims, '1');
        assert.equal(hash['result-value'], JSON.stringify(`hi ${id}`));
      }
      const last = Number(await redis.raw.hget(`${queue}:periodic`, 'half'));
      assert.equal(last % 500, 0);
    } finally {
      delete process.env.SCHEDULE_QUEUE;
      const codes = await Promise.all(workers.map((worker) => worker.stop()));
      assert.deepEqual(codes, [0, 0], workers.map((worker) => worker.log()).join('\n'));
    }
  });

  test('a module whose schedules export is malformed stops the worker at start, naming the field', async () => {
    const bad = path.join(dir, 'bad.mjs');
    await writeFile(bad, "export function f() { return 1; }\nexport const schedules = [{ function: f, every: -1 }];\n");
    const worker = spawnWorker(process.execPath, [CLI, '--url', redis.url, '--queue', uniqueQueue('bad'), bad]);
    await until(() => /invalid module\.schedules/.test(worker.log()), { ms: 10000, what: 'the error' });
    assert.equal(await worker.stop(), 1, worker.log());
    assert.match(worker.log(), /invalid module\.schedules\[0\]\.every: must be a positive number of seconds/);
  });
});

describe('new Worker(queue, { schedules }): arming, a missed occurrence, other queues', () => {
  let redis;

  before(async () => { redis = await startRedis(); });
  after(async () => { await redis.stop(); });

  const redisNow = async () => { const [s, us] = await redis.raw.time(); return Number(s) * 1000 + Math.floor(Number(us) / 1000); };

  /** Runs an inline worker on `queue` until `probe` holds (a few ticks at least), then stops it. */
  async function withWorker(queue, schedules, probe) {
    const seen = [];
    const functions = { report: withParams(['what'], ({ what }, ctx) => { seen.push(ctx.id); return what; }) };
    const worker = new Worker(queue, { url: redis.url, functions, schedules, log: () => undefined });
    const running = worker.run();
    try {
      return await until(async () => probe(seen), { ms: 10000, what: 'the schedule to act' });
    } finally {
      await worker.stop({ graceMs: 2000 });
      await running;
    }
  }

  test('a new schedule is armed (its occurrence recorded, no task) and first fires at its next occurrence', async () => {
    const queue = uniqueQueue('armed');
    const hourly = [{ name: 'hourly', every: 3600, function: 'report', args: { what: 'x' }, queue }];
    const armed = await withWorker(queue, hourly, async () => redis.raw.hget(`${queue}:periodic`, 'hourly'));
    assert.equal(Number(armed), Math.floor((await redisNow()) / 3_600_000) * 3_600_000);
    assert.deepEqual(await redis.raw.keys(`${queue}:task:*`), []);
    assert.equal(await redis.raw.llen(`${queue}:pending`), 0);
  });

  test('occurrences missed while no worker ran: only the latest fires, once, when a worker comes back', async () => {
    for (const [label, spec, period] of [['period', { every: 3600 }, 3_600_000], ['cron', { cron: '0 * * * *' }, 3_600_000]]) {
      const queue = uniqueQueue(`missed-${label}`);
      const latest = Math.floor((await redisNow()) / period) * period;
      await redis.raw.hset(`${queue}:periodic`, 'catch-up', String(latest - 5 * period));
      const schedules = [{ name: 'catch-up', function: 'report', args: { what: label }, queue, ...spec }];
      const id = `catch-up@${iso(latest)}`;
      const ran = await withWorker(queue, schedules, async (seen) => seen.length > 0 && seen);
      assert.deepEqual(ran, [id], label);
      assert.deepEqual(await redis.raw.keys(`${queue}:task:*`), [`${queue}:task:${id}`], label);
      const hash = await redis.raw.hgetall(`${queue}:task:${id}`);
      assert.equal(hash.result, 'successful', label);
      assert.equal(hash['result-value'], JSON.stringify(label));
      assert.equal(await redis.raw.hget(`${queue}:periodic`, 'catch-up'), String(latest));
      // A second worker, later: this occurrence was fired already; nothing more.
      await withWorker(queue, schedules, async () => true);
      assert.deepEqual(await redis.raw.keys(`${queue}:task:*`), [`${queue}:task:${id}`], label);
    }
  });

  test('a schedule whose queue the worker does not serve is left to the workers serving it', async () => {
    const served = uniqueQueue('served');
    const other = uniqueQueue('other');
    const producer = new Queue(served, { url: redis.url });
    try {
      const schedules = [{ name: 'elsewhere', every: 0.2, function: 'report', args: { what: 'x' }, queue: other }];
      await producer.enqueue('report', { what: 'probe' });
      await withWorker(served, schedules, async (seen) => seen.length >= 1);
      assert.deepEqual(await redis.raw.keys(`${other}:*`), []);
    } finally {
      await producer.close();
    }
  });
});
