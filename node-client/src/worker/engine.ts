/** What the parts of a worker share: its settings, connection, clock, functions, pool and the tasks it holds. */
import { type Clock } from '../clock.js';
import { formatMicros } from '../time.js';
import { type TryResult } from './decide.js';
import { type Log } from './log.js';
import { type Settings } from './options.js';
import { type Pool } from './pool.js';
import { type FunctionInfo } from './registry.js';
import { type Claim, type Store } from './store.js';

/** A task this worker owns, from start until its outcome (or next try) is recorded or given up. */
export interface Held {
  claim: Claim;
  /** The function name, once known; and when its try began (the worker key's `running`, SPEC.md 9.1). */
  fn: string | null;
  since: string | null;
  /** Stops the running try with this result; null while no try runs. */
  stop: ((result: TryResult) => void) | null;
}

export interface Engine {
  readonly settings: Settings;
  /** The connection for claims and scripts (BLMOVE and heartbeats have their own). */
  readonly store: Store;
  readonly clock: Clock;
  readonly functions: ReadonlyMap<string, FunctionInfo>;
  readonly pool: Pool;
  /** Held tasks by task key. */
  readonly held: Map<string, Held>;
  readonly log: Log;
  /** Runs the follow-ups of an ended task (followups.ts). */
  followUp(queue: string, id: string): Promise<void>;
}

/** Forgets a held task (no more lease renewals), unless the task is held again under a newer claim. */
export function letGo(engine: Engine, claim: Claim): void {
  const key = claim.keys.task(claim.id);
  if (engine.held.get(key)?.claim === claim) engine.held.delete(key);
}

/** Now on the Redis clock (SPEC.md 9.8), in ms since the epoch. */
export const nowMs = (clock: Clock): number => Number(clock.now() / 1000n);

/** Now on the Redis clock as the protocol writes it. */
export const nowIso = (clock: Clock): string => formatMicros(clock.now());

/** Both, from one reading. */
export function now(clock: Clock): { iso: string; ms: number } {
  const micros = clock.now();
  return { iso: formatMicros(micros), ms: Number(micros / 1000n) };
}
