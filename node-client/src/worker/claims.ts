/**
 * The claim loop (SPEC.md 5.2, 9.7): while a slot is free it moves one entry from pending to
 * executing and hands it over at once (start runs before anything else). The queues are tried in
 * priority order with a non-blocking LMOVE; when all are empty it blocks in BLMOVE on the first
 * queue (block-ms for one queue, 0.25 s for several, so a task of a lower queue waits at most that
 * long), on a connection used for nothing else. stop() ends a BLMOVE at once with CLIENT UNBLOCK
 * (which makes it return nil: no entry can be lost); an entry it returned anyway is still handled.
 * The shards of a sharded queue (SPEC.md 11.2) form one level of equal priority: each claim starts
 * at the next shard, so every shard is served in turn.
 * With several slots free it claims with take.lua instead (SPEC.md 5.18): one call claims and
 * starts up to that many entries of a queue. A lost reply of take.lua leaves the tasks it started
 * to their task leases, which this worker never renews: the reaper requeues them (W-TAKE-3).
 */
import { type Link } from '../connection.js';
import { nowIso, nowMs, type Engine } from './engine.js';
import { type QueueKeys } from './keys.js';
import { errorText } from './log.js';
import { type Taken } from './store.js';
import { sleep } from './timers.js';

const MULTI_QUEUE_BLOCK_S = 0.25;

export type HandOver = (keys: QueueKeys, entry: Buffer, taken?: Taken['reply']) => Promise<void>;

interface Claimed { keys: QueueKeys; entry: Buffer; taken?: Taken['reply'] }

export class Claimer {
  private free: number;
  private wake: (() => void) | null = null;
  private stopping = false;
  private blockingId: number | null = null;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly levels: QueueKeys[][] = [];
  /** Where each level's next claim starts. */
  private readonly turns: number[] = [];

  /** `groups`: how many lanes, in order, make each priority level (default: one each). */
  constructor(private readonly engine: Engine, private readonly blocking: Link, private readonly lanes: QueueKeys[],
    private readonly handOver: HandOver, groups: readonly number[] = lanes.map(() => 1)) {
    this.free = engine.settings.concurrency;
    blocking.redis.on('ready', () => { this.blockingId = null; });
    let start = 0;
    for (const size of groups) {
      this.levels.push(lanes.slice(start, start + size));
      this.turns.push(0);
      start += size;
    }
    if (start !== lanes.length || this.levels.some((level) => level.length === 0)) throw new RangeError('groups must split the lanes into non-empty runs');
  }

  /** The lanes in claim order: levels by priority, each rotated one step further than at the previous claim. */
  order(): QueueKeys[] {
    return this.levels.flatMap((level, index) => {
      const turn = (this.turns[index] ?? 0) % level.length;
      this.turns[index] = turn + 1;
      return [...level.slice(turn), ...level.slice(0, turn)];
    });
  }

  /** The handlings of claimed entries still under way. */
  get handling(): Promise<void>[] {
    return [...this.inFlight];
  }

  /** Claims until stop(); returns once the loop has ended (entries being handled may still run). */
  async run(): Promise<void> {
    let delay = 100;
    let outage: number | null = null;
    while (!this.stopping) {
      if (this.free === 0) {
        await new Promise<void>((resolve) => { this.wake = resolve; });
        continue;
      }
      let claimed: Claimed[];
      try {
        claimed = await this.claim();
      } catch (error) {
        if (outage === null) this.engine.log.warning(`cannot claim (${errorText(error)}); retrying with backoff`);
        outage ??= performance.now();
        await sleep(delay);
        delay = Math.min(delay * 2, 5000);
        continue;
      }
      if (outage !== null) {
        this.engine.log.warning(`claiming again after ${((performance.now() - outage) / 1000).toFixed(1)} s`);
        outage = null;
        delay = 100;
      }
      for (const { keys, entry, taken } of claimed) this.dispatch(keys, entry, taken);
    }
  }

  /** Ends the loop: no more claims; a blocked BLMOVE returns at once. */
  stop(): void {
    this.stopping = true;
    this.wake?.();
    const id = this.blockingId;
    if (id !== null) {
      // An ACL user without CLIENT UNBLOCK: the BLMOVE ends at its timeout instead.
      this.engine.store.run((redis) => redis.client('UNBLOCK', id)).catch(() => undefined);
    }
  }

  private dispatch(keys: QueueKeys, entry: Buffer, taken?: Taken['reply']): void {
    this.free -= 1;
    const handled = this.handOver(keys, entry, taken).finally(() => {
      this.inFlight.delete(handled);
      this.free += 1;
      const wake = this.wake;
      this.wake = null;
      wake?.();
    });
    this.inFlight.add(handled);
  }

  /** take.lua on the first lane that has entries, for every free slot. */
  private async take(lanes: QueueKeys[]): Promise<Claimed[]> {
    const { settings, clock } = this.engine;
    for (const keys of lanes) {
      const taken = await this.engine.store.take(keys, settings.workerId, nowIso(clock), settings, nowMs(clock) + settings.leaseMs, this.free);
      if (taken.length > 0) return taken.map(({ entry, reply }) => ({ keys, entry, taken: reply }));
    }
    return [];
  }

  private async claim(): Promise<Claimed[]> {
    const lanes = this.order();
    if (this.free > 1) {
      const taken = await this.take(lanes);
      if (taken.length > 0) return taken;
    }
    for (const keys of lanes) {
      // LMOVE replies nil when the list is empty (ioredis types the reply as always a Buffer).
      const entry = await this.engine.store.run((redis) => redis.lmoveBuffer(keys.pending, keys.executing, 'RIGHT', 'LEFT') as Promise<Buffer | null>);
      if (entry) return [{ keys, entry }];
    }
    const [first] = lanes;
    if (this.stopping || !first) return [];
    const block = this.lanes.length === 1 ? this.engine.settings.blockMs / 1000 : MULTI_QUEUE_BLOCK_S;
    const entry: Buffer | null = await this.blocking.run(async (redis) => {
      this.blockingId ??= await redis.client('ID');
      if (this.stopping) return null;
      return redis.blmoveBuffer(first.pending, first.executing, 'RIGHT', 'LEFT', block);
    });
    return entry ? [{ keys: first, entry }] : [];
  }
}
