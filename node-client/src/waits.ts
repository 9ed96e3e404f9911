/**
 * Waiting for results: ONE subscription to <queue>:results per Queue, shared by every wait() and
 * dispatched by the message (the task key). A wait subscribes first, then reads the hash, so a
 * result posted between the two cannot be missed. After the subscriber reconnects, every hash
 * being waited on is read again (messages published while disconnected are lost).
 *
 * A connection can also die silently (a NAT or firewall forgets it: no error, no message, ever).
 * So, while anyone waits, the subscriber is PINGed every healthIntervalMs; a PING without a reply
 * within healthTimeoutMs drops the connection, ioredis reconnects and resubscribes, and every
 * waited hash is read again. And each wait also re-reads its hash on a timer of its own (after
 * recheckFirstMs, doubling up to recheckMaxMs), so it ends within that much of the task's end even
 * if every message is lost (SPEC.md 5.9: a client MAY poll).
 *
 * The same subscriber also listens on <queue>:outcomes (SPEC.md 6.1), when Redis allows it: the
 * outcome message of a task carries its outcome, so a wait of a task enqueued here under a new
 * random id (a "fresh" wait) settles from it without reading the hash. Every other wait, and a
 * fresh one whose outcome message has no result (values over the limit, a worker of an earlier
 * revision, a refused subscription), reads the hash on the results message as before.
 */
import type { Link } from './connection.js';
import { InvalidArgumentsError, QueueClosedError, WaitTimeoutError } from './errors.js';
import { RESULT_FIELDS, resultFrom, unwrap, type TaskResult, type WaitOptions } from './task.js';

/** The outcome fields of an outcome message, as RESULT_FIELDS orders them (no state). */
const MESSAGE_FIELDS = RESULT_FIELDS.slice(1);

interface Waiter {
  readonly id: string;
  /** It may take the outcome from the outcome message. */
  readonly fresh: boolean;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
  cleanup: () => void;
  /** The timer of the next re-read of the hash. */
  recheck?: ReturnType<typeof setTimeout>;
}

/** The timings of waits, in ms. */
export interface WaitTimings {
  /** The first re-read of a waited hash comes this long after the first read... */
  recheckFirstMs: number;
  /** ...and the delay doubles up to this: a wait ends within this of the task's end. */
  recheckMaxMs: number;
  /** While anyone waits, the subscriber is PINGed this often... */
  healthIntervalMs: number;
  /** ...and dropped (then made again) when a PING has no reply within this. */
  healthTimeoutMs: number;
}

export const WAIT_TIMINGS: Readonly<WaitTimings> = Object.freeze({
  recheckFirstMs: 100, recheckMaxMs: 5000, healthIntervalMs: 5000, healthTimeoutMs: 5000,
});

const RECHECK_CAP_MS = 1000;

export type ReadFields = (key: string, fields: readonly string[]) => Promise<(string | null)[] | null>;

function checkTimeout(timeout: unknown): number | undefined {
  if (timeout === undefined) return undefined;
  if (typeof timeout !== 'number' || !Number.isFinite(timeout) || timeout < 0) {
    throw new InvalidArgumentsError('timeout', `must be a finite number of milliseconds >= 0, got ${typeof timeout === 'number' ? timeout : typeof timeout}`);
  }
  return timeout;
}

export class ResultWaits {
  private readonly waiters = new Map<string, Set<Waiter>>();
  private subscription: Promise<void> | undefined;
  private subscribed = false;
  private readonly timings: WaitTimings;
  private health: ReturnType<typeof setInterval> | undefined;
  private probing = false;
  /** How many times the subscriber was found dead and dropped. */
  deadConnections = 0;

  constructor(
    private readonly subscriber: Link,
    private readonly channel: string,
    private readonly readFields: ReadFields,
    timings: Partial<WaitTimings> = {},
    /** <queue>:outcomes, whose messages settle fresh waits; undefined: none. */
    private readonly outcomes?: string,
  ) {
    this.timings = { ...WAIT_TIMINGS, ...timings };
    subscriber.redis.on('message', (channel: string, message: string) => {
      if (channel === this.channel && this.waiters.has(message)) {
        void this.checkUntilRead(message);
      } else if (channel === this.outcomes) {
        this.settleFromOutcome(message);
      }
    });
    subscriber.redis.on('ready', () => {
      if (this.subscribed) this.resubscribe().catch(() => undefined);
    });
  }

  /** How many wait() calls are pending. */
  get size(): number {
    let count = 0;
    for (const set of this.waiters.values()) count += set.size;
    return count;
  }

  wait(id: string, key: string, options: WaitOptions, fresh = false): Promise<unknown> {
    const timeout = checkTimeout(options.timeout);
    const { signal } = options;
    return new Promise<unknown>((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason as Error);
        return;
      }
      const waiter: Waiter = { id, fresh, resolve, reject, cleanup: () => undefined };
      const timer = timeout === undefined ? undefined
        : setTimeout(() => { this.settle(key, waiter, { error: new WaitTimeoutError(id, timeout) }); }, timeout);
      const onAbort = (): void => { this.settle(key, waiter, { error: signal?.reason }); };
      signal?.addEventListener('abort', onAbort, { once: true });
      waiter.cleanup = () => {
        clearTimeout(timer);
        clearTimeout(waiter.recheck);
        signal?.removeEventListener('abort', onAbort);
      };
      let set = this.waiters.get(key);
      if (!set) {
        set = new Set();
        this.waiters.set(key, set);
      }
      set.add(waiter);
      this.watchHealth();
      this.subscribe()
        .then(() => this.check(key))
        .then(() => { this.recheckLater(key, waiter, this.timings.recheckFirstMs); })
        .catch((error: unknown) => { this.settle(key, waiter, { error }); });
    });
  }

  /** Rejects every pending wait with `error`. */
  rejectAll(error: Error): void {
    for (const [key, set] of this.waiters) {
      for (const waiter of set) this.settle(key, waiter, { error });
    }
    this.stopHealth();
  }

  /** Reads the hash of `key` again after `delay` ms, then again after twice that (capped), while `waiter` waits. */
  private recheckLater(key: string, waiter: Waiter, delay: number): void {
    if (!this.waiters.get(key)?.has(waiter)) return;
    waiter.recheck = setTimeout(() => {
      this.check(key)
        .catch(() => undefined) // Redis away: the next re-read, the timeout or close() ends the wait
        .finally(() => { this.recheckLater(key, waiter, Math.min(delay * 2, this.timings.recheckMaxMs)); });
    }, delay);
  }

  /** PINGs the subscriber every healthIntervalMs while anyone waits (the timer does not keep the process alive). */
  private watchHealth(): void {
    if (this.health) return;
    this.health = setInterval(() => { void this.probe(); }, this.timings.healthIntervalMs);
    this.health.unref();
  }

  private stopHealth(): void {
    clearInterval(this.health);
    this.health = undefined;
  }

  /**
   * One PING on the subscriber. Without a reply within healthTimeoutMs the connection is dead
   * (nothing else would tell: a silently dropped connection raises no error): it is dropped, and
   * ioredis reconnects and resubscribes; the 'ready' handler then reads every waited hash again.
   */
  private async probe(): Promise<void> {
    const redis = this.subscriber.redis;
    const ready = (): boolean => redis.status === 'ready'; // read afresh after the await
    if (this.probing || !ready()) return;
    this.probing = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const answered = await Promise.race([
        // An error means the connection is already known to be broken: ioredis reconnects by itself.
        redis.ping().then(() => true, () => true),
        new Promise<boolean>((resolve) => { timer = setTimeout(() => { resolve(false); }, this.timings.healthTimeoutMs); }),
      ]);
      if (!answered && ready()) {
        this.deadConnections += 1;
        redis.disconnect(true);
      }
    } finally {
      clearTimeout(timer);
      this.probing = false;
    }
  }

  private subscribe(): Promise<void> {
    this.subscription ??= this.subscriber.run((redis) => redis.subscribe(this.channel)).then(
      async () => {
        this.subscribed = true;
        await this.subscribeOutcomes();
      },
      (error: unknown) => {
        this.subscription = undefined;
        throw error;
      },
    );
    return this.subscription;
  }

  /** Outcome messages are a shortcut: a refusal (an ACL rule without the channel) only loses it. */
  private async subscribeOutcomes(): Promise<void> {
    const outcomes = this.outcomes;
    if (outcomes === undefined) return;
    await this.subscriber.run((redis) => redis.subscribe(outcomes)).catch(() => undefined);
  }

  private async resubscribe(): Promise<void> {
    await this.subscriber.run((redis) => redis.subscribe(this.channel));
    await this.subscribeOutcomes();
    await Promise.all([...this.waiters.keys()].map((key) => this.checkUntilRead(key)));
  }

  /**
   * Settles the fresh waits of the task an outcome message names, with the outcome it carries.
   * A message that is not JSON, names no waited task or has no result tells nothing (SPEC.md 6.1).
   */
  private settleFromOutcome(message: string): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(message);
    } catch {
      return;
    }
    if (parsed === null || typeof parsed !== 'object') return;
    const fields = parsed as Record<string, unknown>;
    const key = fields.task;
    const set = typeof key === 'string' ? this.waiters.get(key) : undefined;
    if (!set || typeof fields.result !== 'string') return;
    const values = [null, ...MESSAGE_FIELDS.map((name) => (typeof fields[name] === 'string' ? fields[name] : null))];
    for (const waiter of [...set]) {
      if (!waiter.fresh) continue;
      try {
        const result = resultFrom(waiter.id, values);
        if (!result) return; // an outcome this client does not know: the hash tells
        this.settle(key as string, waiter, { value: unwrap(waiter.id, result) });
      } catch (error) {
        this.settle(key as string, waiter, { error });
      }
    }
  }

  /**
   * check(), retried while the read fails (the command connection may be down when a message
   * arrives) and someone still waits for `key`; a closed Queue ends it (its waits are rejected).
   */
  private async checkUntilRead(key: string): Promise<void> {
    for (let attempt = 0; this.waiters.has(key); attempt += 1) {
      try {
        await this.check(key);
        return;
      } catch (error) {
        if (error instanceof QueueClosedError) return;
        await new Promise((resolve) => setTimeout(resolve, Math.min(100 * 2 ** attempt, RECHECK_CAP_MS)));
      }
    }
  }

  /** Reads the hash and settles every waiter of `key` when the task has finished. */
  private async check(key: string): Promise<void> {
    const values = await this.readFields(key, RESULT_FIELDS);
    const set = this.waiters.get(key);
    if (!values || !set) return;
    for (const waiter of set) {
      let result: TaskResult | null;
      try {
        result = resultFrom(waiter.id, values);
        if (!result) return;
        this.settle(key, waiter, { value: unwrap(waiter.id, result) });
      } catch (error) {
        this.settle(key, waiter, { error });
      }
    }
  }

  private settle(key: string, waiter: Waiter, outcome: { value: unknown } | { error: unknown }): void {
    const set = this.waiters.get(key);
    if (!set?.delete(waiter)) return; // already settled
    if (set.size === 0) this.waiters.delete(key);
    if (this.waiters.size === 0) this.stopHealth();
    waiter.cleanup();
    if ('error' in outcome) waiter.reject(outcome.error);
    else waiter.resolve(outcome.value);
  }
}
