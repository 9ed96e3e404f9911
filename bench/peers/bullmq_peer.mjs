// bullmq: jobs as hashes, a wait list and a completed set, Lua scripts per step.
// `node bullmq_peer.mjs worker URL C` runs the worker; otherwise the common driver.
import { createRequire } from 'node:module';

import { main } from './common.mjs';

const { Queue, Worker, QueueEvents } = createRequire(new URL('../node/package.json', import.meta.url))('bullmq');

const connection = (url) => {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port), db: Number(u.pathname.slice(1) || 0), maxRetriesPerRequest: null };
};

if (process.argv[2] === 'worker') {
  const worker = new Worker('bench', async () => null, { connection: connection(process.argv[3]), concurrency: Number(process.argv[4]) });
  const stop = async () => { await worker.close(); process.exit(0); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} else {
  const system = {
    recommended: 50, // bullmq's docs suggest raising concurrency well above the default of 1 for light jobs
    q: null,
    events: null,
    async setup() {
      if (!this.q) this.q = new Queue('bench', { connection: connection(this.url) });
    },
    async enqueueOne() { await this.q.add('noop', {}); },
    async enqueueBulk(n) {
      for (let start = 0; start < n; start += 1000) {
        await this.q.addBulk(Array.from({ length: Math.min(1000, n - start) }, () => ({ name: 'noop', data: {} })));
      }
    },
    async roundtrip() {
      if (!this.events) {
        this.events = new QueueEvents('bench', { connection: connection(this.url) });
        await this.events.waitUntilReady();
      }
      const job = await this.q.add('noop', {});
      await job.waitUntilFinished(this.events, 30_000);
    },
    async done() { return this.raw.zcard('bull:bench:completed'); },
    workerArgv(concurrency) { return ['node', 'bullmq_peer.mjs', 'worker', this.url, String(concurrency)]; },
    async close() {
      await this.events?.close();
      await this.q?.close();
    },
  };
  await main(system);
}
