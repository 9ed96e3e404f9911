/**
 * One clock (SPEC.md 9.8): every time the protocol writes or compares is read on the Redis
 * server's clock, as TIME returns it. A Clock measures this machine's offset to it with one TIME
 * round trip, offset = redis - (before + after) / 2, before and after being this machine's clock
 * just before sending TIME and just after the reply. It measures lazily, before the first write
 * that carries a time, and again after each reconnection; concurrent callers share one measurement.
 *
 * A Redis that refuses TIME (an ACL user without it: NOPERM) leaves the offset at 0, with one
 * warning: the enqueue goes on with this machine's clock. A connection failure is not cached: the
 * call fails as any command would, and the next one measures again.
 */
import { ReplyError, type Redis } from 'ioredis';

import { PermissionDeniedError } from './errors.js';
import { nowMicros } from './time.js';

/** An offset beyond this is worth a warning: the machine's clock is wrong (SPEC.md 9.8). */
export const SKEW_WARNING_MICROS = 1_000_000n;

/** Runs `command` on the ready connection (Link.run), so the timed round trip never includes connecting. */
export type Run = <T>(command: (redis: Pick<Redis, 'time'>) => Promise<T>) => Promise<T>;

export interface ClockOptions {
  run: Run;
  /** Names the server in warnings (password masked). */
  url: string;
  /** This machine's clock in microseconds since the epoch. Default: nowMicros. */
  local?: () => bigint;
  /** Where warnings go. Default: console.warn. */
  warn?: (message: string) => void;
}

export class Clock {
  /** Redis's clock minus this machine's, in microseconds; 0 until measured. */
  private offsetMicros = 0n;
  private measuring: Promise<void> | undefined;
  private settled = false;
  private warnedSkew = false;
  private warnedFailure = false;
  private readonly run: Run;
  private readonly url: string;
  private readonly local: () => bigint;
  private readonly warn: (message: string) => void;

  constructor(options: ClockOptions) {
    this.run = options.run;
    this.url = options.url;
    this.local = options.local ?? nowMicros;
    this.warn = options.warn ?? ((message) => { console.warn(message); });
  }

  /** Whether the offset of the current connection is known (measured, or fallen back to 0). */
  get measured(): boolean {
    return this.settled;
  }

  /** The offset in milliseconds (Redis minus this machine). */
  get offsetMs(): number {
    return Number(this.offsetMicros) / 1000;
  }

  /** Now on the Redis clock, in microseconds, with the offset known so far (0 before a measurement). */
  now(): bigint {
    return this.local() + this.offsetMicros;
  }

  /** Now on the Redis clock, measuring the offset first when the connection has not been measured. */
  async read(): Promise<bigint> {
    await this.ready();
    return this.now();
  }

  /** Resolves once the offset of the current connection is known; one TIME for all concurrent callers. */
  ready(): Promise<void> {
    if (!this.measuring) {
      const measuring = this.measure();
      this.measuring = measuring;
      // A failure is not kept: the calls waiting on it fail, the next call measures again.
      measuring.catch(() => { if (this.measuring === measuring) this.measuring = undefined; });
    }
    return this.measuring;
  }

  /** A new connection: the next time-writing call measures again (one under way is kept). */
  reconnected(): void {
    if (this.settled) {
      this.settled = false;
      this.measuring = undefined;
    }
  }

  private async measure(): Promise<void> {
    try {
      this.offsetMicros = await this.run(async (redis) => {
        const before = this.local();
        const [seconds = 0, micros = 0] = await redis.time();
        const after = this.local();
        return BigInt(seconds) * 1_000_000n + BigInt(micros) - (before + after) / 2n;
      });
      this.warnSkew();
    } catch (error) {
      // a refusal of TIME (a ReplyError, or the PermissionDeniedError a producer's link makes of it) leaves offset 0;
      // anything else fails the call as any would
      if (!(error instanceof ReplyError) && !(error instanceof PermissionDeniedError)) throw error;
      this.offsetMicros = 0n;
      this.warnFailure(error as Error);
    }
    this.settled = true;
  }

  private warnSkew(): void {
    const offset = this.offsetMicros;
    if (this.warnedSkew || (offset <= SKEW_WARNING_MICROS && offset >= -SKEW_WARNING_MICROS)) return;
    this.warnedSkew = true;
    const ms = Math.round(this.offsetMs);
    const way = ms < 0 ? 'ahead of' : 'behind';
    this.warn(`dothis: this machine's clock is wrong: it is ${Math.abs(ms)} ms ${way} the clock of Redis at ${this.url} ` +
      `(offset ${ms} ms); the times dothis writes follow Redis's clock (SPEC.md 9.8), but fix the machine's clock (NTP)`);
  }

  private warnFailure(error: Error): void {
    if (this.warnedFailure) return;
    this.warnedFailure = true;
    const reply = error.cause instanceof Error ? error.cause.message : error.message; // Redis's own words
    this.warn(`dothis: cannot read the clock of Redis at ${this.url} (TIME: ${reply}); the times dothis writes ` +
      'follow this machine\'s clock (offset 0), which must then agree with the workers\' (SPEC.md 9.8); allow TIME ' +
      '(ACL: +time) to correct it');
  }
}
