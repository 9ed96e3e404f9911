// Shared measurement code for the Node drivers; the Node twin of common.py.
// A driver is run as `node bench/peers/<system>.mjs --url URL --figure FIGURE [--n N] [-c C]`
// and prints one JSON object on its last line of stdout.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, openSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

export const HERE = dirname(fileURLToPath(import.meta.url));
export const BENCH = dirname(HERE);
const DRAIN_TIMEOUT = Number(process.env.BENCH_DRAIN_TIMEOUT ?? 240) * 1000;

/** ioredis, from the peers' node_modules or else from the node-client's. */
export function loadIoredis() {
  for (const base of [join(BENCH, 'node', 'package.json'), join(BENCH, '..', 'node-client', 'package.json')]) {
    try {
      const mod = createRequire(base)('ioredis');
      return mod.default ?? mod.Redis ?? mod;
    } catch { /* next */ }
  }
  throw new Error('ioredis not found: run npm install in bench/node or node-client');
}

export function parseArgs(argv = process.argv.slice(2)) {
  const opts = { n: 1000, concurrency: 0, queue: 'bench', sleep: 0.2, log: null };
  for (let i = 0; i < argv.length; i += 1) {
    const [name, value] = [argv[i], argv[i + 1]];
    if (name === '--url') opts.url = value;
    else if (name === '--figure') opts.figure = value;
    else if (name === '--n') opts.n = Number(value);
    else if (name === '-c' || name === '--concurrency') opts.concurrency = Number(value);
    else if (name === '--queue') opts.queue = value;
    else if (name === '--sleep') opts.sleep = Number(value);
    else if (name === '--log') opts.log = value;
    else continue;
    i += 1;
  }
  return opts;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function treePids(pid) {
  const children = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat;
    try { stat = readFileSync(`/proc/${entry}/stat`, 'utf8'); } catch { continue; }
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (!children.has(ppid)) children.set(ppid, []);
    children.get(ppid).push(Number(entry));
  }
  const found = [];
  const todo = [pid];
  while (todo.length) {
    const current = todo.pop();
    found.push(current);
    todo.push(...(children.get(current) ?? []));
  }
  return found;
}

export function rssBytes(pid) {
  let total = 0;
  for (const member of treePids(pid)) {
    try {
      const match = readFileSync(`/proc/${member}/smaps_rollup`, 'utf8').match(/Pss:\s+(\d+)/);
      if (match) total += Number(match[1]) * 1024;
    } catch { /* gone */ }
  }
  return total;
}

export function cpuSeconds(pid) {
  let total = 0;
  for (const member of treePids(pid)) {
    try {
      const stat = readFileSync(`/proc/${member}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      total += (Number(fields[11]) + Number(fields[12])) / 100;
    } catch { /* gone */ }
  }
  return total;
}

async function info(raw, section, field) {
  const text = await raw.info(section);
  return Number(text.match(new RegExp(`${field}:(\\S+)`))[1]);
}
export const redisCpu = async (raw) => (await info(raw, 'cpu', 'used_cpu_user')) + (await info(raw, 'cpu', 'used_cpu_sys'));
export const redisCommands = (raw) => info(raw, 'stats', 'total_commands_processed');
export const usedMemory = (raw) => info(raw, 'memory', 'used_memory');

export async function keyMemory(raw) {
  let cursor = '0';
  let keys = 0;
  let total = 0;
  do {
    const [next, batch] = await raw.scan(cursor, 'COUNT', 1000);
    cursor = next;
    if (batch.length) {
      const pipe = raw.pipeline();
      for (const key of batch) pipe.call('MEMORY', 'USAGE', key, 'SAMPLES', '0');
      for (const [, value] of await pipe.exec()) total += Number(value ?? 0);
      keys += batch.length;
    }
  } while (cursor !== '0');
  return [keys, total];
}

export function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.round((p / 100) * sorted.length + 0.5) - 1))];
}

export function startWorker(system, concurrency, logPath) {
  const [command, ...args] = system.workerArgv(concurrency);
  const out = logPath ? openSync(logPath, 'a') : 'ignore';
  const env = { ...process.env, PYTHONPATH: [HERE, process.env.PYTHONPATH].filter(Boolean).join(':'), ...(system.workerEnv ?? {}) };
  return spawn(command, args, { cwd: HERE, env, stdio: ['ignore', out, out], detached: true });
}

export async function stopWorker(proc, grace = 8000) {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  try { process.kill(-proc.pid, 'SIGTERM'); } catch { return; }
  const timer = setTimeout(() => { try { process.kill(-proc.pid, 'SIGKILL'); } catch { /* gone */ } }, grace);
  await exited;
  clearTimeout(timer);
}

async function waitDone(system, n, proc, started) {
  let firstT = null;
  let firstCount = 0;
  for (;;) {
    const count = await system.done(n);
    const now = performance.now();
    if (count && firstT === null) { firstT = now; firstCount = count; }
    if (count >= n) return [now, firstT ?? now, firstCount];
    if (proc.exitCode !== null) throw new Error(`worker exited with ${proc.exitCode} after ${count}/${n} tasks`);
    if (now - started > DRAIN_TIMEOUT) throw new Error(`drain timed out at ${count}/${n} tasks`);
    await sleep(2);
  }
}

async function waitReady(system, proc) {
  await system.enqueueOne(-1);
  const deadline = performance.now() + 30_000;
  while ((await system.done(1)) < 1) {
    if (proc.exitCode !== null) throw new Error(`worker exited with ${proc.exitCode} before running a task`);
    if (performance.now() > deadline) throw new Error('worker did not run a first task within 30 s');
    await sleep(10);
  }
}

export async function figEnqueue(system, n) {
  await system.setup();
  await system.enqueueOne(-2);
  await system.raw.flushall();
  await system.setup();
  await system.enqueueOne(-2);
  const started = performance.now();
  for (let i = 0; i < n; i += 1) await system.enqueueOne(i);
  const seconds = (performance.now() - started) / 1000;
  return { rate: n / seconds, seconds, n };
}

export async function figBulk(system, n) {
  await system.setup();
  await system.enqueueOne(-2);
  await system.raw.flushall();
  await system.setup();
  await system.raw.call('MEMORY', 'PURGE');
  const mem0 = await usedMemory(system.raw);
  const keys0 = await system.raw.dbsize();
  const started = performance.now();
  await system.enqueueBulk(n);
  const seconds = (performance.now() - started) / 1000;
  await system.raw.call('MEMORY', 'PURGE');
  const mem1 = await usedMemory(system.raw);
  const [keys, usage] = await keyMemory(system.raw);
  return {
    rate: n / seconds, seconds, n,
    memory_per_task: (mem1 - mem0) / n,
    key_usage_per_task: usage / n,
    keys_per_task: (keys - keys0) / n,
  };
}

export async function figDrain(system, n, concurrency, logPath, prefill = true) {
  if (prefill) {
    await system.raw.flushall();
    await system.setup();
    await system.enqueueBulk(n);
  }
  const cpu0 = await redisCpu(system.raw);
  const cmd0 = await redisCommands(system.raw);
  const started = performance.now();
  const proc = startWorker(system, concurrency, logPath);
  let end; let first; let firstCount; let cpu1; let cmd1; let rss; let workerCpu; let processes;
  try {
    [end, first, firstCount] = await waitDone(system, n, proc, started);
    cpu1 = await redisCpu(system.raw);
    cmd1 = await redisCommands(system.raw);
    workerCpu = cpuSeconds(proc.pid);
    rss = rssBytes(proc.pid);
    processes = treePids(proc.pid).length;
  } finally {
    await stopWorker(proc);
  }
  return {
    rate: n / ((end - started) / 1000),
    steady_rate: end > first ? (n - firstCount) / ((end - first) / 1000) : null,
    seconds: (end - started) / 1000,
    startup_seconds: (first - started) / 1000,
    n, concurrency,
    redis_cpu_per_task_us: ((cpu1 - cpu0) / n) * 1e6,
    redis_commands_per_task: (cmd1 - cmd0) / n,
    worker_cpu_per_task_us: (workerCpu / n) * 1e6,
    worker_rss: rss,
    worker_processes: processes,
  };
}

export async function figLatency(system, n, concurrency, logPath) {
  await system.raw.flushall();
  await system.setup();
  const proc = startWorker(system, concurrency, logPath);
  const samples = [];
  try {
    await waitReady(system, proc);
    for (let i = 0; i < Math.min(20, Math.max(2, Math.floor(n / 5))); i += 1) await system.roundtrip(-100 - i);
    for (let i = 0; i < n; i += 1) {
      const started = performance.now();
      await system.roundtrip(i);
      samples.push(performance.now() - started);
    }
  } finally {
    await stopWorker(proc);
  }
  samples.sort((a, b) => a - b);
  return {
    p50_ms: percentile(samples, 50),
    p99_ms: percentile(samples, 99),
    mean_ms: samples.reduce((a, b) => a + b, 0) / samples.length,
    n, concurrency,
  };
}

/** Run one figure for a system object and print its JSON. */
export async function main(system) {
  const opts = parseArgs();
  const Redis = loadIoredis();
  system.raw = new Redis(opts.url);
  system.url = opts.url;
  system.queue = opts.queue;
  const concurrency = opts.concurrency || system.recommended || 1;
  let result;
  try {
    if (opts.figure === 'info') result = { recommended: system.recommended };
    else if (opts.figure === 'enqueue') result = await figEnqueue(system, opts.n);
    else if (opts.figure === 'bulk') result = await figBulk(system, opts.n);
    else if (opts.figure === 'drain') result = await figDrain(system, opts.n, concurrency, opts.log);
    else if (opts.figure === 'latency') result = await figLatency(system, opts.n, opts.concurrency || 1, opts.log);
    else if (opts.figure === 'sleep') {
      await system.raw.flushall();
      await system.setup();
      await system.sleepTasks(opts.sleep, opts.n);
      result = await figDrain(system, opts.n, concurrency, opts.log, false);
    } else throw new Error(`unknown figure ${opts.figure}`);
  } finally {
    await system.close?.();
    system.raw.disconnect();
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}
