// Benchmark (not a test): starts its own redis-server and a Python worker, then measures
//   1. the enqueue rate of enqueueMany for 10,000 tasks (no worker on that queue), and
//   2. the round-trip latency, enqueue to result, of 500 sequential echo tasks through the worker.
// Usage: npm run bench   (env DOTHIS_PYTHON: the interpreter with dothis; default ../.venv/bin/python)
import { performance } from 'node:perf_hooks';

import { Queue } from '../dist/esm/index.js';
import { findPython, startRedis, startWorker } from '../test/support/redis.mjs';

const ENQUEUE_TASKS = 10_000;
const ENQUEUE_RUNS = 3;
const ROUND_TRIPS = 500;
const WARMUP = 20;

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
const ms = (value) => `${value.toFixed(3)} ms`;

async function enqueueRate(url) {
  const rates = [];
  for (let run = 1; run <= ENQUEUE_RUNS; run += 1) {
    const queue = new Queue(`bench-enqueue-${run}`, { url });
    const specs = Array.from({ length: ENQUEUE_TASKS }, (_, i) => ({ fn: 'echo', args: { text: `task ${i}` } }));
    await queue.length(); // connect outside the timing
    const started = performance.now();
    await queue.enqueueMany(specs);
    const seconds = (performance.now() - started) / 1000;
    if ((await queue.length()) !== ENQUEUE_TASKS) throw new Error('not every task was enqueued');
    rates.push(ENQUEUE_TASKS / seconds);
    console.log(`  run ${run}: ${ENQUEUE_TASKS} tasks in ${(seconds * 1000).toFixed(1)} ms = ${Math.round(ENQUEUE_TASKS / seconds)} tasks/s`);
    await queue.close();
  }
  return rates.sort((a, b) => a - b)[Math.floor(rates.length / 2)];
}

async function roundTrips(url, queueName) {
  const queue = new Queue(queueName, { url });
  for (let i = 0; i < WARMUP; i += 1) {
    await (await queue.enqueue('echo', { text: 'warm-up' })).wait({ timeout: 30_000 });
  }
  const samples = [];
  for (let i = 0; i < ROUND_TRIPS; i += 1) {
    const started = performance.now();
    const task = await queue.enqueue('echo', { text: `ping ${i}` });
    const value = await task.wait({ timeout: 30_000 });
    samples.push(performance.now() - started);
    if (value !== `ping ${i}`) throw new Error(`unexpected value ${JSON.stringify(value)}`);
  }
  await queue.close();
  return samples.sort((a, b) => a - b);
}

const python = await findPython();
if (!python) {
  console.error('bench: no Python interpreter with dothis; set DOTHIS_PYTHON or create ../.venv');
  process.exit(1);
}
const redis = await startRedis();
const worker = startWorker(python, redis.url, 'bench-rt');
try {
  const version = (await redis.raw.info('server')).match(/redis_version:(\S+)/)?.[1];
  console.log(`dothis node-client bench: Node ${process.version}, redis-server ${version} on ${redis.url}, Python worker (concurrency 1)`);
  console.log(`\nenqueueMany, ${ENQUEUE_TASKS} tasks (${ENQUEUE_RUNS} runs):`);
  const rate = await enqueueRate(redis.url);
  console.log(`  median: ${Math.round(rate)} tasks/s`);
  console.log(`\nround trip enqueue -> result, ${ROUND_TRIPS} sequential echo tasks (after ${WARMUP} warm-up):`);
  const samples = await roundTrips(redis.url, 'bench-rt');
  const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
  console.log(`  p50 ${ms(percentile(samples, 50))}  p99 ${ms(percentile(samples, 99))}  mean ${ms(mean)}` +
    `  min ${ms(samples[0])}  max ${ms(samples[samples.length - 1])}`);
} catch (error) {
  console.error(`bench failed: ${error.stack ?? error}\n--- worker log ---\n${worker.log()}`);
  process.exitCode = 1;
} finally {
  const code = await worker.stop();
  await redis.stop();
  if (code !== 0) console.error(`worker exited with ${code}:\n${worker.log()}`);
}
