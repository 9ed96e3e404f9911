// dothis, Node producer (node-client/dist) with the Python worker: enqueue, enqueueMany, wait.
import { join } from 'node:path';

import { BENCH, main } from './common.mjs';

const CLIENT = process.env.BENCH_NODE_CLIENT ?? join(BENCH, '..', 'node-client');
const { Queue } = await import(join(CLIENT, 'dist', 'esm', 'index.js'));
const PYTHON_BIN = process.env.BENCH_DOTHIS_BIN ?? join(BENCH, '..', '.venv', 'bin', 'dothis');

const system = {
  recommended: 1,
  queueObj: null,
  async setup() {
    if (this.queueObj) await this.queueObj.close();
    this.queueObj = new Queue(this.queue, { url: this.url });
  },
  async enqueueOne() { await this.queueObj.enqueue('noop', {}); },
  async enqueueBulk(n) {
    for (let start = 0; start < n; start += 50_000) {
      await this.queueObj.enqueueMany(Array.from({ length: Math.min(50_000, n - start) }, () => ({ fn: 'noop', args: {} })));
    }
  },
  async roundtrip() { await (await this.queueObj.enqueue('noop', {})).wait({ timeout: 30_000 }); },
  async done(n) {
    const [[, pending], [, executing]] = await this.raw.pipeline()
      .llen(`${this.queue}:pending`).llen(`${this.queue}:executing`).exec();
    return n - pending - executing;
  },
  workerArgv(concurrency) {
    return [PYTHON_BIN, 'worker', '--url', this.url, '--queue', this.queue, '--processes', '1',
      '--concurrency', String(concurrency), '--log-level', 'WARNING', 'dothis_py'];
  },
  async close() { if (this.queueObj) await this.queueObj.close(); },
};

await main(system);
