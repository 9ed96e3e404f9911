/**
 * The inline pool: task functions run on the worker's own event loop, as plain async calls.
 *
 * The trade-off (the Python worker's `--pool inline` has the same): JavaScript cannot kill a
 * running promise. A try that reaches its timeout, or whose task is cancelled, is recorded at once
 * (`timeout`, `cancelled`) and its `ctx.signal` aborts, but the function runs on until it returns
 * or looks at the signal, and its result is ignored. A function that computes without awaiting
 * blocks the whole worker while it runs: claims, heartbeats and lease renewals wait for it, and a
 * try longer than the lease is recovered by another worker. Use the thread pool (a `module`) for
 * functions that may not yield or that must be stopped for real.
 */
import { callFunction } from './callable.js';
import { type TryResult } from './decide.js';
import { once, type Pool, type RunningTry, type TryRequest } from './pool.js';
import { describeFunctions, type FunctionInfo, type TaskContext, type TaskFunction } from './registry.js';

export class InlinePool implements Pool {
  readonly kind = 'inline';
  readonly functions: FunctionInfo[];

  /** `schedules`: those of the task module the functions come from (scheduler.ts checks them). */
  constructor(private readonly table: Record<string, TaskFunction>, readonly schedules: unknown = []) {
    this.functions = describeFunctions(table);
  }

  start(): Promise<void> {
    return Promise.resolve();
  }

  run(request: TryRequest): RunningTry {
    const { promise, settle } = once<TryResult>();
    const controller = new AbortController();
    const fn = this.table[request.name];
    const context: TaskContext = {
      ...request.context,
      signal: controller.signal,
      progress: (fraction, message) => request.onProgress(fraction, message),
    };
    if (!fn) {
      settle({ kind: 'raised', reason: `no function ${request.name}`, exception: '' });
    } else {
      void callFunction(fn as (...args: unknown[]) => unknown, request.args, context, request.maxDepth).then(settle);
    }
    return {
      result: promise,
      stop: (result) => {
        if (settle(result)) controller.abort(new Error(`the try was stopped: ${result.kind}`));
      },
    };
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
