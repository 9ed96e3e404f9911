/** Task handles and reading a task hash back: state, outcome and value. */
import { InvalidArgumentsError, MalformedResultError, TaskFailedError } from './errors.js';
import type { Outcome, State } from './protocol.js';

/** A task's state: one of the protocol's states, or whatever unexpected text the hash holds. */
export type TaskState = State | (string & NonNullable<unknown>);

/** How a finished task ended: successful with a value, or failed, cancelled or expired with an error. */
export type TaskResult =
  | { outcome: 'successful'; value: unknown }
  | { outcome: 'failed' | 'cancelled' | 'expired'; code: string; reason: string; exception: string };

/** What cancel() did: cancelled it before it started, asked its worker to stop it, or found it finished. */
export type CancelResult = 'cancelled' | 'requested' | 'finished';

/** What delete() did: deleted the task with every entry of it, or left it alone because it runs. */
export type DeleteResult = 'deleted' | 'running';

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
  /** Times its worker was lost while running it (losses; 0 when absent). */
  losses: number;
  /** Tries that failed and were retried (retries; 0 when absent). */
  retries: number;
  /** Total tries allowed (attempts), null when absent (the worker then allows 1). */
  attempts: number | null;
  /** Seconds a try may run (timeout), null when absent. */
  timeout: number | null;
  /** Seconds the task may wait to start (ttl), null when absent. */
  ttl: number | null;
  /** Seconds the hash is kept after success (result-ttl; -1: kept), null when absent. */
  resultTtl: number | null;
  /** Seconds the hash is kept after another outcome (failure-ttl; -1: kept), null when absent. */
  failureTtl: number | null;
  /** Ids of the parents (depends-on), null when the task has none (or the field is not a JSON array of strings). */
  dependsOn: string[] | null;
  /** Parents not finished yet (waiting-for), null when absent. */
  waitingFor: number | null;
  onSuccess: string | null;
  onFailure: string | null;
  /** For a callback task, the id of the task that triggered it (callback-of). */
  callbackOf: string | null;
  description: string | null;
  scheduledFor: string | null;
  /** When a cancel was asked for while it ran (cancel-requested). */
  cancelRequested: string | null;
  /** The last progress report (SPEC.md 5.16), or null. */
  progress: Progress | null;
  /**
   * Seconds from the last claim to the finish (finished-created minus executing-created), with
   * microseconds; null unless the task has finished after being claimed.
   */
  timeTaken: number | null;
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
  /** `fresh`: the task was enqueued under a new random id and no wait of it has seen an ending (see Task). */
  wait(id: string, key: string, options: WaitOptions, fresh?: boolean): Promise<unknown>;
  cancel(id: string, key: string): Promise<CancelResult>;
  delete(id: string, key: string): Promise<DeleteResult>;
  waitProgress(id: string, key: string, timeoutMs: number): Promise<Progress>;
}

/** A running task's last progress report (SPEC.md 5.16): the hash's progress field. */
export interface Progress {
  /** From 0 to 1. */
  fraction: number;
  message?: string;
  /** When it was reported: an ISO-8601 UTC timestamp. */
  updated: string;
}

/** The progress field parsed, or null when absent or not a JSON object with a numeric fraction. */
export function parseProgress(text: string | null | undefined): Progress | null {
  if (text === null || text === undefined) return null;
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed !== null && typeof parsed === 'object' && typeof (parsed as Progress).fraction === 'number') {
      return parsed as Progress;
    }
  } catch {
    // a value that does not parse is ignored (SPEC.md 3.1)
  }
  return null;
}

function parseValue(id: string, text: string | null): unknown {
  if (text === null) {
    throw new MalformedResultError(id, 'is successful but has no result-value');
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new MalformedResultError(id, 'has a result-value that is not JSON', { cause: error });
  }
}

/** The outcome from RESULT_FIELDS values; null while the task has none. */
export function resultFrom(id: string, values: readonly (string | null)[]): TaskResult | null {
  const [, result, value, code, reason, exception] = values;
  if (result === 'successful') return { outcome: 'successful', value: parseValue(id, value ?? null) };
  if (result === 'failed' || result === 'cancelled' || result === 'expired') {
    const fallback = result === 'failed' ? 'unknown' : result;
    return { outcome: result, code: code ?? fallback, reason: reason ?? '', exception: exception ?? '' };
  }
  return null;
}

/** Settles a finished task's result the way wait() does: the value, or a TaskFailedError. */
export function unwrap(id: string, result: TaskResult): unknown {
  if (result.outcome === 'successful') return result.value;
  throw new TaskFailedError(id, result.code, result.reason, result.exception);
}

const nullable = (value: string | undefined): string | null => value ?? null;

function numeric(value: string | undefined): number | null {
  if (value === undefined || !/^-?[0-9]+(\.[0-9]+)?$/.test(value)) return null;
  return Number(value);
}

function stringArray(value: string | undefined): string[] | null {
  if (value === undefined) return null;
  try {
    const parsed: unknown = JSON.parse(value);
    return Array.isArray(parsed) && parsed.every((item) => typeof item === 'string') ? parsed : null;
  } catch {
    return null;
  }
}

/** Microseconds since the epoch of a protocol timestamp (2015-12-05T00:19:01.834909Z), or null. */
function timestampMicros(value: string | undefined): bigint | null {
  const match = value === undefined ? null : /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?Z$/.exec(value);
  if (!match) return null;
  const seconds = Date.parse(`${match[1] ?? ''}Z`);
  if (!Number.isFinite(seconds)) return null;
  return BigInt(seconds) * 1000n + BigInt((match[2] ?? '').padEnd(6, '0'));
}

function timeTaken(fields: Readonly<Record<string, string>>): number | null {
  if (fields.state !== 'finished') return null;
  const started = timestampMicros(fields['executing-created']);
  const finished = timestampMicros(fields['finished-created']);
  return started === null || finished === null ? null : Number(finished - started) / 1e6;
}

/** A handle on one task. Reading it never changes it. */
export class Task {
  readonly id: string;
  readonly key: string;
  private readonly source: TaskSource;
  /**
   * Enqueued by this process under a new random id, and no wait of it has seen an ending yet: its
   * wait may take the outcome from the outcome message (SPEC.md 5.9, 6.1), which tells of an
   * ending of the key, not of which run. Every other wait reads the hash.
   */
  private fresh: boolean;

  /** @internal Tasks come from Queue.enqueue, enqueueMany, getTask or task. */
  constructor(source: TaskSource, id: string, key: string, fresh = false) {
    this.source = source;
    this.id = id;
    this.key = key;
    this.fresh = fresh;
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
      // every outcome but successful carries the error fields (failed, cancelled, expired: SPEC.md 5.9)
      error: result && result.outcome !== 'successful' ? { code: result.code, reason: result.reason, exception: result.exception } : null,
      pendingCreated: nullable(fields['pending-created']),
      executingCreated: nullable(fields['executing-created']),
      finishedCreated: nullable(fields['finished-created']),
      worker: nullable(fields.worker),
      claims: Number.parseInt(fields.claims ?? '0', 10) || 0,
      losses: Number.parseInt(fields.losses ?? '0', 10) || 0,
      retries: Number.parseInt(fields.retries ?? '0', 10) || 0,
      attempts: numeric(fields.attempts),
      timeout: numeric(fields.timeout),
      ttl: numeric(fields.ttl),
      resultTtl: numeric(fields['result-ttl']),
      failureTtl: numeric(fields['failure-ttl']),
      dependsOn: stringArray(fields['depends-on']),
      waitingFor: numeric(fields['waiting-for']),
      onSuccess: nullable(fields['on-success']),
      onFailure: nullable(fields['on-failure']),
      callbackOf: nullable(fields['callback-of']),
      description: nullable(fields.description),
      scheduledFor: nullable(fields['scheduled-for']),
      cancelRequested: nullable(fields['cancel-requested']),
      progress: parseProgress(fields.progress),
      timeTaken: timeTaken(fields),
      fields,
    };
  }

  /**
   * Resolves with the function's return value once the task finishes; rejects with
   * TaskFailedError (code, reason, exception) when it failed, WaitTimeoutError after
   * `timeout` ms. All waits of a Queue share one subscription to <queue>:results.
   */
  async wait<T = unknown>(options: WaitOptions = {}): Promise<T> {
    let value: unknown;
    try {
      value = await this.source.wait(this.id, this.key, options, this.fresh);
    } catch (error) {
      if (error instanceof TaskFailedError || error instanceof MalformedResultError) this.fresh = false; // it saw an ending
      throw error;
    }
    this.fresh = false; // it saw an ending
    return value as T;
  }

  /**
   * Cancels the task (lua/cancel.lua). Resolves 'cancelled' when it had not started (it left
   * pending or scheduled, or stopped waiting for its parents, and finished with result
   * cancelled: its waits reject with TaskFailedError code 'cancelled'); 'requested' when it is
   * running (cancel-requested is set and its worker stops it); 'finished' when it had already
   * finished (nothing is done). Rejects with TaskNotFoundError when there is no such task.
   */
  async cancel(): Promise<CancelResult> {
    return this.source.cancel(this.id, this.key);
  }

  /**
   * Deletes the task with every entry of it (lua/delete.lua, SPEC.md 5.17). Resolves 'deleted'
   * (its hash is gone; tasks waiting for it fail with dependency-failed), or 'running' when it
   * is executing (nothing is done: cancel it first). Rejects with TaskNotFoundError when there is
   * no such task.
   */
  async delete(): Promise<DeleteResult> {
    return this.source.delete(this.id, this.key);
  }

  /** The last progress the task reported (SPEC.md 5.16), or null: none yet, or no such task. */
  async progress(): Promise<Progress | null> {
    const values = await this.source.readFields(this.key, ['progress']);
    return values === null ? null : parseProgress(values[0]);
  }

  /**
   * Resolves with the next progress report after the call (a message on <queue>:progress);
   * rejects with WaitTimeoutError after `timeout` ms (default 30000).
   */
  async waitProgress(options: { timeout?: number } = {}): Promise<Progress> {
    const timeout = options.timeout ?? 30_000;
    if (!Number.isFinite(timeout) || timeout <= 0) {
      throw new InvalidArgumentsError('timeout', `must be a positive number of milliseconds, got ${String(timeout)}`);
    }
    return this.source.waitProgress(this.id, this.key, timeout);
  }
}
