/**
 * Where tries run. A pool runs one call of a task function per request and can stop it:
 *
 * - the inline pool (inline.ts) calls functions on the worker's own event loop: cheap, but a try
 *   it stops (timeout, cancel) is only abandoned (its AbortSignal fires, its result is ignored), and
 *   a function that blocks the loop delays the worker, heartbeats included;
 * - the thread pool (threads.ts) runs each try in a worker thread and ends the thread to stop it,
 *   which stops code that never yields too; the thread is then replaced.
 */
import { type CallResult } from './callable.js';
import { type TryResult } from './decide.js';
import { type FunctionInfo } from './registry.js';

/** What a task function sees of its task, besides `signal` and `progress` (registry.ts's TaskContext). */
export interface ContextData {
  id: string;
  queue: string;
  function: string;
  tryNumber: number;
  attempts: number;
  workerId: string;
  claims: number;
}

export interface TryRequest {
  name: string;
  args: Record<string, unknown>;
  context: ContextData;
  /** Deepest nesting of the return value (json-max-depth). */
  maxDepth: number;
  /** A progress report of the try: true when written; throws RangeError for a bad fraction or message. */
  onProgress: (fraction: unknown, message: unknown) => Promise<boolean>;
}

export interface RunningTry {
  /** How the try ended: the call's result, or the result given to stop(). */
  result: Promise<TryResult>;
  /** Stops the try now; its result becomes `result` (a later result of the call is ignored). */
  stop(result: TryResult): void;
}

export interface Pool {
  /** 'thread' or 'inline'. */
  readonly kind: string;
  /** The functions the pool offers (known once start() resolved). */
  readonly functions: FunctionInfo[];
  /** The `schedules` the task module declares, as plain data, unchecked (known once start() resolved; [] without a module). */
  readonly schedules: unknown;
  /** Loads the functions (the thread pool starts its threads); rejects when they cannot be loaded. */
  start(): Promise<void>;
  run(request: TryRequest): RunningTry;
  /** Ends the pool: threads are terminated. */
  close(): Promise<void>;
}

/** A promise with its settle function, settled once: later results are dropped. */
export function once<T>(): { promise: Promise<T>; settle: (value: T) => boolean } {
  let resolve: (value: T) => void = () => undefined;
  let done = false;
  const promise = new Promise<T>((r) => { resolve = r; });
  return {
    promise,
    settle: (value) => {
      if (done) return false;
      done = true;
      resolve(value);
      return true;
    },
  };
}

export type { CallResult };
