// A/B timing of the Node producer's Queue.enqueueMany (not part of bench/run.py).
//
//   node bench/node-enqueue/run.mjs [--n 100000] [--reps 3] [--dist DIR] [--only dothis,raw,bee] [--args distinct]
//   node bench/node-enqueue/run.mjs --peers [--n 20000] [--reps 5] [--client DIR]... [--figure bulk|enqueue]
//
// Starts its own redis-server on a free loopback port (stopped by pid at the end), then per
// repetition, in one process:
//   dothis: a fresh Queue (its connect, TIME and registry write included, as in bench/peers/
//           dothis_node.mjs), enqueueMany of N tasks {fn: 'noop', args: {}} (--args distinct:
//           {i: <n>}, each its own), in calls of 50,000;
//   raw:    a bare ioredis loop sending the same enqueue.lua calls (EVALSHA, same KEYS and ARGV),
//           pipelined 1,000 at a time with 8 pipelines in flight;
//   bee:    bee-queue saveAll of N jobs in batches of 1,000 (bench/node/node_modules), when installed;
// and prints tasks/s and Redis CPU (µs per task). --dist picks the node-client build (default
// node-client/dist) so that two builds can be compared in alternating runs; a copy elsewhere needs
// ioredis on its module path (e.g. a node_modules link next to it).
//
// --peers runs the project's own drivers instead, one process per figure as bench/run.py does:
// the `bulk` figure (or --figure enqueue: one awaited enqueue at a time) (N tasks from a fresh process and Queue, N = 20,000 in bench/run.py) of the Node
// producer of node-client and of each --client folder (holding a dist/), and of bee-queue saveAll.
// The machine may be shared: compare medians of several alternating repetitions.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..', '..');
const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const at = args.indexOf(`--${name}`);
  return at === -1 ? fallback : args[at + 1];
};
const N = Number(opt('n', 100_000));
const REPS = Number(opt('reps', 3));
const DIST = resolve(opt('dist', join(ROOT, 'node-client', 'dist')));
const ONLY = opt('only', 'dothis,raw,bee').split(',');
const CHUNK = Number(opt('chunk', 50_000));
// --args distinct: each task its own args ({ i }) instead of {} for all
const ARGS = opt('args', 'empty') === 'distinct' ? (i) => ({ i }) : () => ({});

const requireClient = createRequire(join(ROOT, 'node-client', 'package.json'));
const { Redis } = requireClient('ioredis');
const { Queue } = await import(join(DIST, 'esm', 'index.js'));

async function freePort() {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  await once(server, 'close');
  return port;
}

async function startRedis() {
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '',
    '--appendonly', 'no', '--maxmemory-policy', 'noeviction'], { stdio: 'ignore' });
  const url = `redis://127.0.0.1:${port}/0`;
  const raw = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  raw.on('error', () => undefined);
  for (let i = 0; ; i += 1) {
    try {
      if (raw.status === 'wait' || raw.status === 'end') await raw.connect();
      if ((await raw.ping()) === 'PONG') break;
    } catch { raw.disconnect(); }
    if (i > 250) throw new Error('redis-server did not start');
    await new Promise((r) => setTimeout(r, 20));
  }
  return { url, raw, pid: child.pid, exited: once(child, 'exit') };
}

const redisCpu = async (raw) => {
  const text = await raw.info('cpu');
  const get = (f) => Number(text.match(new RegExp(`${f}:(\\S+)`))[1]);
  return get('used_cpu_user') + get('used_cpu_sys');
};

async function timed(raw, run) {
  await raw.flushall();
  const cpu0 = await redisCpu(raw);
  const started = performance.now();
  await run();
  const seconds = (performance.now() - started) / 1000;
  const cpu1 = await redisCpu(raw);
  const pending = await raw.llen('bench:pending');
  return { rate: N / seconds, ms: seconds * 1000, redisUs: ((cpu1 - cpu0) / N) * 1e6, pending };
}

// -- dothis: as bench/peers/dothis_node.mjs does it --------------------------------------------
let warmQueue;
async function dothis(url) {
  if (!warmQueue) {
    warmQueue = new Queue('bench', { url });
    await warmQueue.enqueue('noop', {}); // the driver's warm-up call: compiles the schemas
  }
  return async () => {
    const queue = new Queue('bench', { url });
    try {
      for (let start = 0; start < N; start += CHUNK) {
        await queue.enqueueMany(Array.from({ length: Math.min(CHUNK, N - start) }, (_, i) => ({ fn: 'noop', args: ARGS(start + i) })));
      }
    } finally {
      await queue.close();
    }
  };
}

// -- raw: the same enqueue.lua calls from a bare ioredis loop ------------------------------------
const LUA = readFileSync(join(ROOT, 'lua', 'enqueue.lua'), 'utf8');
async function rawLoop(url) {
  const redis = new Redis(url);
  const sha = await redis.script('LOAD', LUA);
  return async () => {
    const now = new Date().toISOString().replace('Z', '000Z');
    const batch = async (count) => {
      const pipeline = redis.pipeline();
      for (let i = 0; i < count; i += 1) {
        const id = randomUUID();
        pipeline.evalsha(sha, 3, `bench:task:${id}`, 'bench:pending', 'bench:scheduled', id, 'back', '1', '0',
          'function', 'noop', 'state', 'pending', 'args', JSON.stringify(ARGS(i)), 'pending-created', now);
      }
      for (const [error, reply] of await pipeline.exec()) if (error || reply !== 1) throw error ?? new Error(String(reply));
    };
    let next = 0;
    const lane = async () => {
      while (next < N) {
        const count = Math.min(1000, N - next);
        next += count;
        await batch(count);
      }
    };
    await Promise.all(Array.from({ length: 8 }, lane));
  };
}

// -- bee-queue saveAll, as bench/peers/bee_queue_peer.mjs does it ---------------------------------
let bee;
async function beeQueue(url) {
  if (!bee) {
    let BeeQueue;
    try {
      BeeQueue = createRequire(join(ROOT, 'bench', 'node', 'package.json'))('bee-queue');
    } catch { return null; }
    bee = new BeeQueue('bench', { redis: { url }, isWorker: false, getEvents: false });
    await bee.ready();
  }
  return async () => {
    for (let start = 0; start < N; start += 1000) {
      const jobs = Array.from({ length: Math.min(1000, N - start) }, (_, i) => bee.createJob(ARGS(start + i)));
      const errors = await bee.saveAll(jobs);
      if (errors.size) throw [...errors.values()][0];
    }
  };
}

const systems = { dothis, raw: rawLoop, bee: beeQueue };
const server = await startRedis();

// --peers: the project's own drivers (bench/peers/*.mjs), one process per figure as bench/run.py
// runs them: the `bulk` figure of the Node producer (N tasks from a fresh process and Queue), of
// each --client (a node-client folder with a dist/, e.g. a copy of an older build), and of bee-queue.
if (args.includes('--peers')) {
  const { execFileSync } = await import('node:child_process');
  const FIGURE = opt('figure', 'bulk');
  const clients = [join(ROOT, 'node-client'), ...args.flatMap((a, i) => (a === '--client' ? [resolve(args[i + 1])] : []))];
  const runs = [...clients.map((client) => ({ name: `dothis ${client}`, file: 'dothis_node.mjs', env: { BENCH_NODE_CLIENT: client } })),
    { name: 'bee-queue saveAll', file: 'bee_queue_peer.mjs', env: {} }];
  const rates = new Map();
  try {
    for (let rep = 1; rep <= REPS; rep += 1) {
      for (const run of runs) {
        const out = execFileSync(process.execPath, [join(ROOT, 'bench', 'peers', run.file), '--url', server.url, '--figure', FIGURE,
          '--n', String(N)], { cwd: join(ROOT, 'bench', 'peers'), env: { ...process.env, ...run.env }, encoding: 'utf8' });
        const { rate } = JSON.parse(out.trim().split('\n').at(-1));
        rates.set(run.name, [...(rates.get(run.name) ?? []), rate]);
        console.log(`  rep ${rep} ${run.name}: ${Math.round(rate)} tasks/s`);
      }
    }
    for (const [name, list] of rates) {
      const sorted = [...list].sort((a, b) => a - b);
      console.log(`${name}: median ${Math.round(sorted[Math.floor(sorted.length / 2)])} tasks/s (${sorted.map(Math.round).join(', ')})`);
    }
  } finally {
    server.raw.disconnect();
    process.kill(server.pid, 'SIGTERM');
    await server.exited;
  }
  process.exit(0);
}

const results = {};
try {
  console.log(`N=${N} reps=${REPS} dist=${DIST} redis=${server.url}`);
  for (let rep = 1; rep <= REPS; rep += 1) {
    for (const name of ONLY) {
      const run = await systems[name](server.url);
      if (!run) continue;
      const result = await timed(server.raw, run);
      (results[name] ??= []).push(result.rate);
      console.log(`  rep ${rep} ${name.padEnd(7)} ${Math.round(result.rate).toString().padStart(7)} tasks/s  ` +
        `${result.ms.toFixed(0).padStart(5)} ms  redis ${result.redisUs.toFixed(2)} us/task`);
    }
  }
  for (const [name, rates] of Object.entries(results)) {
    const sorted = [...rates].sort((a, b) => a - b);
    console.log(`${name.padEnd(7)} median ${Math.round(sorted[Math.floor(sorted.length / 2)])} tasks/s  best ${Math.round(sorted.at(-1))}`);
  }
} finally {
  await warmQueue?.close();
  await bee?.close();
  server.raw.disconnect();
  process.kill(server.pid, 'SIGTERM');
  await server.exited;
}
process.exit(0);
