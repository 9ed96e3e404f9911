// bee-queue: jobs in one hash, a wait list, a succeeded set; results by pub/sub events.
// `node bee_queue_peer.mjs worker URL C` runs the worker; otherwise the common driver.
import { createRequire } from 'node:module';

import { main } from './common.mjs';

const BeeQueue = createRequire(new URL('../node/package.json', import.meta.url))('bee-queue');

if (process.argv[2] === 'worker') {
  const queue = new BeeQueue('bench', { redis: { url: process.argv[3] }, getEvents: false, sendEvents: true });
  queue.process(Number(process.argv[4]), async () => null);
  const stop = async () => { await queue.close(); process.exit(0); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} else {
  const system = {
    recommended: 10, // process(concurrency); the default is 1
    q: null,
    async setup() {
      if (!this.q) {
        this.q = new BeeQueue('bench', { redis: { url: this.url }, isWorker: false, getEvents: true });
        await this.q.ready();
      }
    },
    async enqueueOne() { await this.q.createJob({}).save(); },
    async enqueueBulk(n) {
      for (let start = 0; start < n; start += 1000) {
        const jobs = Array.from({ length: Math.min(1000, n - start) }, () => this.q.createJob({}));
        const errors = await this.q.saveAll(jobs);
        if (errors.size) throw [...errors.values()][0];
      }
    },
    async roundtrip() {
      // the queue-level 'job succeeded' event (pub/sub); per-job listeners missed results after a
      // few hundred jobs here. An event that arrives before save() resolves is kept in `early`.
      if (!this.waiting) {
        this.waiting = new Map();
        this.early = new Set();
        this.q.on('job succeeded', (id) => {
          const resolve = this.waiting.get(String(id));
          if (resolve) resolve(); else this.early.add(String(id));
        });
      }
      const job = await this.q.createJob({}).save();
      const id = String(job.id);
      if (this.early.delete(id)) return;
      let timer;
      await new Promise((resolve, reject) => {
        this.waiting.set(id, resolve);
        timer = setTimeout(() => reject(new Error('no result within 30 s')), 30_000);
      });
      clearTimeout(timer);
      this.waiting.delete(id);
    },
    async done() { return this.raw.scard('bq:bench:succeeded'); },
    workerArgv(concurrency) { return ['node', 'bee_queue_peer.mjs', 'worker', this.url, String(concurrency)]; },
    async close() { await this.q?.close(); },
  };
  await main(system);
}
