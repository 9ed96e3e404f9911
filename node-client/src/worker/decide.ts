/**
 * The decision after a try, as pure functions (no I/O, no clock of its own): from what a try
 * produced and the task's settings to "the task ended with outcome X" (an Ending, written by
 * finish.lua) or "try again at T" (a NextTry, written by retry.lua). SPEC.md 5.4, 5.5, 5.10.
 */
import { formatMicros } from '../time.js';
import { type CallResult } from './callable.js';
import { type Failure } from './checks.js';

/** What one try produced: a call result, or how the worker stopped it. */
export type TryResult =
  | CallResult
  | { kind: 'timeout'; timeoutMs: number }
  | { kind: 'crashed'; detail: string }
  | { kind: 'cancelled' }
  | { kind: 'too-large'; detail: string }
  /** The try was abandoned (the task was taken away, or the worker stops by force): nothing is recorded. */
  | { kind: 'abandoned'; reason: string };

export interface Ending {
  kind: 'ending';
  outcome: 'successful' | 'failed' | 'cancelled' | 'expired';
  /** finish.lua's field/value pairs, in SPEC.md 3.1's order. */
  fields: string[];
}

export interface NextTry {
  kind: 'next-try';
  dueMs: number;
  /** retry.lua's field/value pairs. */
  fields: string[];
}

export interface RetryPolicy {
  retryBaseMs: number;
  retryMaxMs: number;
}

const RETRYABLE = new Set(['exception', 'timeout', 'crashed']);

const iso = (ms: number): string => formatMicros(BigInt(Math.round(ms)) * 1000n);

/** The ending of a try that returned `json`. */
export function succeeded(json: string, now: string): Ending {
  return { kind: 'ending', outcome: 'successful', fields: ['state', 'finished', 'result-value', json, 'result', 'successful', 'finished-created', now] };
}

/** The ending of a task that did not succeed; cancelled and expired have outcomes of their own (SPEC.md 7.1). */
export function ended(failure: Failure, now: string): Ending {
  const outcome = failure.code === 'cancelled' ? 'cancelled' : failure.code === 'expired' ? 'expired' : 'failed';
  return {
    kind: 'ending',
    outcome,
    fields: ['state', 'finished', 'result', outcome, 'error-code', failure.code, 'error-reason', failure.reason,
      'error-exception', failure.exception ?? '', 'finished-created', now],
  };
}

/** Backoff before retry number `retries + 1`: min(max, base * 2^retries) times `jitter` in [0.5, 1]. */
export function backoffMs(policy: RetryPolicy, retries: number, jitter: number): number {
  return Math.floor(Math.min(policy.retryMaxMs, policy.retryBaseMs * 2 ** Math.min(retries, 30)) * jitter);
}

/** The failure a try's result stands for (null for a value: the task succeeded). */
export function failureOf(result: Exclude<TryResult, { kind: 'returned' } | { kind: 'abandoned' }>, name: string): Failure {
  switch (result.kind) {
    case 'raised': return { code: 'exception', reason: result.reason, exception: result.exception };
    case 'retry': return { code: 'exception', reason: result.reason };
    case 'unserializable': return { code: 'unserializable-result', reason: result.detail };
    case 'too-large': return { code: 'too-large', reason: result.detail };
    case 'timeout': return { code: 'timeout', reason: `${name} ran longer than its timeout of ${result.timeoutMs / 1000} s and was stopped` };
    case 'crashed': return { code: 'crashed', reason: result.detail };
    case 'cancelled': return { code: 'cancelled', reason: `${name} was cancelled while it ran` };
  }
}

/**
 * What follows a try of function `name` with `tries` = the task's settings as read at start: the
 * ending, or the next try when the try failed with exception, timeout or crashed (or asked for a
 * retry) and retries + 1 < attempts. `jitter` is a random number in [0.5, 1].
 */
export function decide(result: Exclude<TryResult, { kind: 'abandoned' }>, name: string, tries: { attempts: number; retries: number },
  policy: RetryPolicy, nowMs: number, jitter: number): Ending | NextTry {
  const now = iso(nowMs);
  if (result.kind === 'returned') return succeeded(result.json, now);
  const failure = failureOf(result, name);
  if (RETRYABLE.has(failure.code) && tries.retries + 1 < tries.attempts) {
    const asked = result.kind === 'retry' ? result.delayMs : null;
    const dueMs = nowMs + (asked ?? backoffMs(policy, tries.retries, jitter));
    return {
      kind: 'next-try',
      dueMs,
      fields: ['state', 'scheduled', 'retries', String(tries.retries + 1), 'scheduled-for', iso(dueMs),
        'error-code', failure.code, 'error-reason', failure.reason, 'error-exception', failure.exception ?? ''],
    };
  }
  if (result.kind === 'retry') {
    failure.reason = `retry requested after the last of ${tries.attempts} attempt(s): ${failure.reason}`;
  }
  return ended(failure, now);
}
