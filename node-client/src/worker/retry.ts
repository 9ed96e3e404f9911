/**
 * Thrown by a task function to ask for another try (SPEC.md 9.5): with attempts left the task is
 * retried after `delayMs` (or the worker's backoff); on its last attempt it fails with `exception`
 * and a reason saying so. Recognised by a marker (Symbol.for('dothis.retry')), not by class, so a
 * Retry of another copy of this package (a pool thread loading its own) counts too.
 */
export class Retry extends Error {
  /** Milliseconds before the next try; null: the worker's exponential backoff. */
  readonly delayMs: number | null;

  constructor(reason = 'retry requested', options: { delayMs?: number } = {}) {
    super(reason);
    this.name = 'Retry';
    const delay = options.delayMs;
    if (delay !== undefined && (typeof delay !== 'number' || !Number.isFinite(delay) || delay < 0)) {
      throw new RangeError(`Retry: delayMs must be a number of milliseconds >= 0, got ${String(delay)}`);
    }
    this.delayMs = delay ?? null;
  }
}

Object.defineProperty(Retry.prototype, Symbol.for('dothis.retry'), { value: true });
