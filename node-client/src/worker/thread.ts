/**
 * The code a pool thread runs (threads.ts). `threadSource()` is its complete text: the functions of
 * callable.ts and `threadMain`, joined from their source (they are self-contained), so a thread
 * needs no file of this package, in either build. A thread imports the task module itself, says
 * which functions it offers, then runs one try at a time:
 *
 *   main -> thread  { type: 'run', token, name, args, context, maxDepth }
 *   thread -> main  { type: 'ready', functions, schedules } | { type: 'load-error', message }
 *                   { type: 'progress', token, seq, fraction, message }   (answered by 'progress-ack')
 *                   { type: 'done', token, result }
 *
 * Every message about a try carries the try's token, a random UUID, so a late message of a try the
 * worker already gave up on is recognised and dropped.
 */
import { callFunction, describeError, encodeValue, paramsOf, pickFunctions, pickSchedules, type CallResult } from './callable.js';

interface Helpers {
  /** `(url) => import(url)`, written in threadSource's text: TypeScript's CommonJS build would turn an import() here into require(). */
  importModule: (url: string) => Promise<unknown>;
  pickFunctions: typeof pickFunctions;
  pickSchedules: typeof pickSchedules;
  paramsOf: typeof paramsOf;
  callFunction: typeof callFunction;
}

/** The body of a pool thread. SELF-CONTAINED: it uses only its argument, `require` and globals. */
export function threadMain(helpers: Helpers): void {
  // An eval'd worker script is CommonJS: require is how it reaches node:worker_threads.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const threads = require('node:worker_threads') as typeof import('node:worker_threads');
  const port = threads.parentPort;
  if (!port) return;
  const data = threads.workerData as { moduleUrl: string };
  const acks = new Map<number, (answer: { ok: boolean; error?: string }) => void>();
  let seq = 0;
  const run = async (functions: Record<string, (...args: unknown[]) => unknown>, message: Record<string, unknown>): Promise<CallResult> => {
    const token = message.token as string;
    const controller = new AbortController();
    const context = {
      ...(message.context as Record<string, unknown>),
      signal: controller.signal,
      progress: (fraction: unknown, text?: unknown): Promise<boolean> => new Promise((resolve, reject) => {
        seq += 1;
        acks.set(seq, (answer) => { if (answer.error === undefined) resolve(answer.ok); else reject(new RangeError(answer.error)); });
        port.postMessage({ type: 'progress', token, seq, fraction, message: text });
      }),
    };
    const fn = functions[message.name as string];
    if (!fn) return { kind: 'raised', reason: `no function ${String(message.name)} in this thread`, exception: '' };
    return helpers.callFunction(fn, message.args, context, message.maxDepth as number);
  };
  helpers.importModule(data.moduleUrl).then((mod: unknown) => {
    const functions = helpers.pickFunctions(mod);
    const offered = Object.entries(functions).map(([name, fn]) => ({ name, params: helpers.paramsOf(fn) }));
    port.on('message', (message: Record<string, unknown>) => {
      if (message.type === 'progress-ack') {
        acks.get(message.seq as number)?.({ ok: message.ok === true, ...(typeof message.error === 'string' ? { error: message.error } : {}) });
        acks.delete(message.seq as number);
      } else if (message.type === 'run') {
        void run(functions, message).then((result) => { port.postMessage({ type: 'done', token: message.token, result }); });
      }
    });
    port.postMessage({ type: 'ready', functions: offered, schedules: helpers.pickSchedules(mod, functions) });
  }).catch((error: unknown) => {
    port.postMessage({ type: 'load-error', message: error instanceof Error ? (error.stack ?? error.message) : String(error) });
  });
}

/** The script a pool thread evaluates. */
export function threadSource(): string {
  const parts = [paramsOf, pickFunctions, pickSchedules, describeError, encodeValue, callFunction].map((fn) => fn.toString());
  return `'use strict';\n${parts.join('\n')}\n(${threadMain.toString()})({ importModule: (url) => import(url), pickFunctions, pickSchedules, paramsOf, callFunction });\n`;
}
