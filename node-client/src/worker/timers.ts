/** Background loops (heartbeat, reaper, promoter, cancel checks): a tick every period, never two at once. */
import { errorText, type Log } from './log.js';

export class Periodic {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = true;
  private failing = false;

  /**
   * `periodMs` between the end of a tick and the start of the next; with `jitter` each interval is
   * multiplied by a fresh random factor in [0.8, 1.2] (SPEC.md 5.7, 5.11).
   */
  constructor(private readonly name: string, private readonly periodMs: number, private readonly jitter: boolean,
    private readonly tick: () => Promise<void>, private readonly log: Log) {}

  /** Starts the loop; the first tick runs after one period, or at once with `now`. */
  start(now = false): void {
    this.stopped = false;
    this.schedule(now ? 0 : this.interval());
  }

  /** Stops the loop and waits for a tick under way. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  private interval(): number {
    return this.jitter ? this.periodMs * (0.8 + Math.random() * 0.4) : this.periodMs;
  }

  private schedule(delay: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.once().finally(() => {
        this.running = undefined;
        this.schedule(this.interval());
      });
    }, delay);
  }

  private async once(): Promise<void> {
    try {
      await this.tick();
      if (this.failing) this.log.info(`${this.name} works again`);
      this.failing = false;
    } catch (error) {
      // one line per episode of failures, not one per tick
      if (!this.failing) this.log.warning(`${this.name} failed (${errorText(error)}); retrying every ${Math.round(this.periodMs)} ms`);
      this.failing = true;
    }
  }
}

const MAX_DELAY_MS = 2 ** 31 - 1; // setTimeout fires at once for a longer delay

/** Calls `fn` after `ms`, however long (in steps of at most ~24.8 days); returns the canceller. */
export function after(ms: number, fn: () => void): () => void {
  let timer: NodeJS.Timeout;
  const arm = (left: number): void => {
    timer = setTimeout(() => { if (left > MAX_DELAY_MS) arm(left - MAX_DELAY_MS); else fn(); }, Math.min(left, MAX_DELAY_MS));
  };
  arm(ms);
  return () => { clearTimeout(timer); };
}

/** Resolves after `ms`. */
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
