#!/usr/bin/env node
/**
 * dothis-worker: the Node worker's command line.
 *
 *   dothis-worker --url redis://127.0.0.1:6379/0 --queue high --queue low --concurrency 4 ./tasks.mjs
 *
 * MODULE exports the functions (each export that is a function, or a `functions` object); they run
 * in a pool of worker threads (--pool thread, the default) or on the worker's own loop (--pool
 * inline). SIGTERM or SIGINT stops the worker gracefully (--grace-ms); a second one stops it at once.
 */
import { parseArgs } from 'node:util';

import { DothisError } from '../errors.js';
import { type WorkerOptions } from './options.js';
import { VERSION } from './version.js';
import { Worker } from './worker.js';

const USAGE = `usage: dothis-worker [options] MODULE

Runs the functions MODULE exports (an ES or CommonJS module: its function exports, or a
\`functions\` object) as tasks of the named queues (SPEC.md: the dothis protocol).

options:
  --url URL               Redis URL (default: $DOTHIS_REDIS_URL, else redis://127.0.0.1:6379/0)
  -q, --queue NAME        a queue to serve; repeat it for several, highest priority first (default: dothis)
  -c, --concurrency N     tasks run at once (default 1)
  --shards N              serve each queue as one logical queue over N shards, {QUEUE.0} ... {QUEUE.N-1},
                          claimed in turn; N must match the count the queue is declared with (SPEC.md 11.2)
  --worker-id ID          this worker's id (default: a random UUID)
  --pool thread|inline    where functions run (default thread: one worker thread per try, ended at its timeout)
  --timeout-ms MS         default timeout of a try, for tasks without a timeout field (default: none)
  --lease-ms MS           worker and task lease (default 15000)
  --heartbeat-ms MS       heartbeat interval (default 5000, at most a third of the lease)
  --reap-ms MS            mean interval of recovery sweeps (default 5000)
  --max-claims N          losses of a task's worker before it fails with worker-lost (default 3)
  --max-value-bytes N     largest field a task may hold (default 8388608)
  --grace-ms MS           after SIGTERM, how long running tasks may finish (default 30000)
  --version               print the version
  -h, --help              print this help
`;

const NUMBERS: Record<string, keyof WorkerOptions> = {
  concurrency: 'concurrency', shards: 'shards', 'timeout-ms': 'timeout', 'lease-ms': 'leaseMs', 'heartbeat-ms': 'heartbeatMs',
  'reap-ms': 'reapMs', 'max-claims': 'maxClaims', 'max-value-bytes': 'maxValueBytes',
};

function options(): { queues: string[]; options: WorkerOptions; graceMs: number } | null {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      url: { type: 'string' }, queue: { type: 'string', short: 'q', multiple: true }, 'worker-id': { type: 'string' },
      pool: { type: 'string' }, 'grace-ms': { type: 'string' }, version: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
      ...Object.fromEntries(Object.keys(NUMBERS).map((name) => [name, { type: 'string' as const, ...(name === 'concurrency' ? { short: 'c' } : {}) }])),
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return null;
  }
  if (values.version) {
    process.stdout.write(`dothis-worker ${VERSION}\n`);
    return null;
  }
  if (positionals.length !== 1) throw new TypeError('give one MODULE exporting the functions');
  const number = (name: string, text: string): number => {
    if (!/^[0-9]+(\.[0-9]+)?$/.test(text)) throw new TypeError(`--${name} must be a number, got ${JSON.stringify(text)}`);
    return Number(text);
  };
  const worker: WorkerOptions = { module: positionals[0] };
  const raw = values as Record<string, string | undefined>;
  for (const [flag, option] of Object.entries(NUMBERS)) {
    const text = raw[flag];
    if (text !== undefined) (worker as Record<string, unknown>)[option] = number(flag, text);
  }
  if (values.url !== undefined) worker.url = values.url;
  if (values['worker-id'] !== undefined) worker.workerId = values['worker-id'];
  if (values.pool !== undefined) worker.pool = values.pool as WorkerOptions['pool'];
  const graceMs = values['grace-ms'] === undefined ? 30_000 : number('grace-ms', values['grace-ms']);
  return { queues: values.queue ?? ['dothis'], options: worker, graceMs };
}

async function main(): Promise<number> {
  let parsed: ReturnType<typeof options>;
  let worker: Worker;
  try {
    parsed = options();
    if (parsed === null) return 0;
    worker = new Worker(parsed.queues, parsed.options);
  } catch (error) {
    process.stderr.write(`dothis-worker: ${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  worker.handleSignals(parsed.graceMs);
  try {
    await worker.run();
    return 0;
  } catch (error) {
    const text = error instanceof DothisError ? error.message : ((error as Error).stack ?? String(error));
    process.stderr.write(`dothis-worker: ${text}\n`);
    return 1;
  }
}

// Exits once the worker has stopped, even if task code left a timer or a socket open.
main().then((code) => { process.exit(code); }, (error: unknown) => {
  process.stderr.write(`dothis-worker: ${String(error)}\n`);
  process.exit(1);
});
