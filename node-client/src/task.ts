/** Task handles and reading a task hash back: state, outcome and value. */
import { DothisError, TaskFailedError } from './errors.js';
import type { Outcome, State } from './protocol.js';

/** A task's state: one of the protocol's states, or whatever unexpected text the hash holds. */
export type TaskState = State | (string & NonNullable<unknown>);

/** How a finished task ended. */
export type TaskResult =
  | { outcome: 'successful'; value: unknown }
  | { outcome: 'failed'; code: string; reason: string; exception: string };

/** Everything the hash says about a task. Timestamps are the protocol's ISO-8601 strings. */
export interface TaskInfo {
  id: string;
  key: string;
  function: string | null;
  state: TaskState;
  /** The args JSON text as stored. */
  args: string | null;
  outcome: Outcome | null;
  /** The return value when the outcome is successful, else undefined. */
  value: unknown;
  error: { code: string; reason: string; exception: string } | null;
  pendingCreated: string | null;
  executingCreated: string | null;
  finishedCreated: string | null;
  worker: string | null;
  claims: number;
  /** Every field of the hash, raw. */
  fields: Readonly<Record<string, string>>;
}

export interface WaitOptions {
  /** Give up after this many milliseconds with a WaitTimeoutError. Default: wait as long as it takes. */
  timeout?: number;
  /** Give up when this signal aborts (rejects with the signal's reason). */
  signal?: AbortSignal;
}

/** The fields wait() and result() read, in this order. */
export const RESULT_FIELDS = ['state', 'result', 'result-value', 'error-code', 'error-reason', 'error-exception'] as const;

/** What a Task needs from its Queue. */
export interface TaskSource {
  readonly name: string;
  readFields(key: string, fields: readonly string[]): Promise<(string | null)[] | null>;
  readHash(key: string): Promise<Record<string, string> | null>;
  wait(id: string, key: string, options: WaitOptions): Promise<unknown>;
}

function parseValue(id: string, text: string | null): unknown {
  if (text === null) {
    throw new DothisError(`task ${JSON.stringify(id)} is successful but has no result-value`, 'malformed-result');
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new DothisError(`task ${JSON.stringify(id)} has a result-value that is not JSON`, 'malformed-result', { cause: error });
  }
}

/** The outcome from RESULT_FIELDS values; null while the task has none. */
export function resultFrom(id: string, values: readonly (string | null)[]): TaskResult | null {
  const [, result, value, code, reason, exception] = values;
  if (result === 'successful') return { outcome: 'successful', value: parseValue(id, value ?? null) };
  if (result === 'failed') {
    return { outcome: 'failed', code: code ?? 'unknown', reason: reason ?? '', exception: exception ?? '' };
  }
  return null;
}

/** Settles a finished task's result the way wait() does: the value, or a TaskFailedError. */
export function unwrap(id: string, result: TaskResult): unknown {
  if (result.outcome === 'successful') return result.value;
  throw new TaskFailedError(id, result.code, result.reason, result.exception);
}

const nullable = (value: string | undefined): string | null => value ?? null;

/** A handle on one task. Reading it never changes it. */
export class Task {
  readonly id: string;
  readonly key: string;
  private readonly source: TaskSource;

  /** @internal Tasks come from Queue.enqueue, enqueueMany, getTask or task. */
  constructor(source: TaskSource, id: string, key: string) {
    this.source = source;
    this.id = id;
    this.key = key;
  }

  /** The queue's name. */
  get queue(): string {
    return this.source.name;
  }

  /** The current state, or null when the hash does not exist. A hash without a state is pending. */
  async state(): Promise<TaskState | null> {
    const values = await this.source.readFields(this.key, ['state']);
    return values === null ? null : (values[0] ?? 'pending');
  }

  /** The outcome once finished; null while pending or executing, or when there is no hash. */
  async result(): Promise<TaskResult | null> {
    const values = await this.source.readFields(this.key, RESULT_FIELDS);
    return values === null ? null : resultFrom(this.id, values);
  }

  /** A snapshot of the whole hash, or null when it does not exist. */
  async info(): Promise<TaskInfo | null> {
    const fields = await this.source.readHash(this.key);
    if (fields === null) return null;
    const result = resultFrom(this.id, RESULT_FIELDS.map((field) => fields[field] ?? null));
    return {
      id: this.id,
      key: this.key,
      function: nullable(fields.function),
      state: fields.state ?? 'pending',
      args: nullable(fields.args),
      outcome: result ? result.outcome : null,
      value: result?.outcome === 'successful' ? result.value : undefined,
      error: result?.outcome === 'failed' ? { code: result.code, reason: result.reason, exception: result.exception } : null,
      pendingCreated: nullable(fields['pending-created']),
      executingCreated: nullable(fields['executing-created']),
      finishedCreated: nullable(fields['finished-created']),
      worker: nullable(fields.worker),
      claims: Number.parseInt(fields.claims ?? '0', 10) || 0,
      fields,
    };
  }

  /**
   * Resolves with the function's return value once the task finishes; rejects with
   * TaskFailedError (code, reason, exception) when it failed, WaitTimeoutError after
   * `timeout` ms. All waits of a Queue share one subscription to <queue>:results.
   */
  async wait<T = unknown>(options: WaitOptions = {}): Promise<T> {
    return (await this.source.wait(this.id, this.key, options)) as T;
  }
}
