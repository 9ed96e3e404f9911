/**
 * The reaper (SPEC.md 5.7, 9.2, 9.3): every pass, for every queue the worker serves, it runs the
 * follow-ups left in `<queue>:releasing`, checks the parents of waiting tasks (5.13), and reads
 * `<queue>:executing`. An owned entry goes back to pending when its owner's worker key is gone, or
 * (an owner whose key says `leases task`) when its task lease ran out. An ownerless entry (its
 * claimer died between LMOVE and start) goes back only after this reaper has seen it ownerless for
 * a whole lease, so a live claimer is never raced.
 */
import { ReplyError } from 'ioredis';

import { now, type Engine } from './engine.js';
import { type Followups } from './followups.js';
import { rejectionRecord, showEntry, type QueueKeys } from './keys.js';

/** An entry of the executing list as a pass reads it: an invalid id, or the owner fields of its task. */
type Seen = { entry: Buffer; problem: string } | { entry: Buffer; id: string; fields: (string | null)[] };

const PAGE = 1000;
const MAX_PAGES = 100;

export class Reaper {
  /** Entry (queue and bytes) -> when (monotonic ms) this reaper first saw it without an owner. */
  private readonly ownerless = new Map<string, number>();

  constructor(private readonly engine: Engine, private readonly lanes: QueueKeys[], private readonly followups: Followups) {}

  async pass(): Promise<void> {
    for (const keys of this.lanes) {
      await this.followups.drain(keys);
      await this.followups.checkWaiting(keys);
      await this.sweep(keys);
    }
  }

  private async executing(keys: QueueKeys): Promise<Buffer[]> {
    const entries: Buffer[] = [];
    for (let page = 0; page < MAX_PAGES; page += 1) {
      const chunk = await this.engine.store.run((redis) => redis.lrangeBuffer(keys.executing, page * PAGE, page * PAGE + PAGE - 1));
      entries.push(...chunk);
      if (chunk.length < PAGE) break;
    }
    return entries;
  }

  private async sweep(keys: QueueKeys): Promise<void> {
    const { store, settings } = this.engine;
    const seen = new Set<string>();
    const entries = await this.executing(keys);
    const owners = await Promise.all(entries.map(async (entry): Promise<Seen> => {
      const parsed = keys.parseEntry(entry);
      if ('problem' in parsed) return { entry, problem: parsed.problem };
      const fields = await store.run((redis) => redis.hmget(keys.task(parsed.id), 'state', 'worker', 'lease-expires'))
        .catch((error: unknown) => { if (error instanceof ReplyError) return [null, null, null]; throw error; });
      return { entry, id: parsed.id, fields };
    }));
    for (const item of owners) {
      const { entry } = item;
      if ('problem' in item) {
        const record = rejectionRecord(entry, 'invalid-id', item.problem, settings.workerId, this.engine.clock.now());
        await store.reject(keys, entry, record, settings.rejectedMax);
        continue;
      }
      const memory = `${keys.queue}\u0000${entry.toString('latin1')}`;
      seen.add(memory);
      const [state, owner, lease] = item.fields;
      if (state === 'executing' && owner) {
        this.ownerless.delete(memory);
        await this.recoverOwned(keys, entry, item.id, owner, lease ?? null);
        continue;
      }
      const first = this.ownerless.get(memory) ?? performance.now();
      this.ownerless.set(memory, first);
      if (performance.now() - first >= settings.leaseMs) await this.recover(keys, entry, item.id, '', false, memory);
    }
    for (const memory of this.ownerless.keys()) {
      if (memory.startsWith(`${keys.queue}\u0000`) && !seen.has(memory)) this.ownerless.delete(memory);
    }
  }

  /** An owned task goes back when its owner's key is gone, or its task lease ran out (owner with `leases task`). */
  private async recoverOwned(keys: QueueKeys, entry: Buffer, id: string, owner: string, lease: string | null): Promise<void> {
    const workerKey = keys.worker(owner);
    let alive = true;
    let taskLeases = false;
    try {
      const leases = await this.engine.store.run((redis) => redis.hget(workerKey, 'leases'));
      taskLeases = leases === 'task';
      alive = leases !== null || await this.engine.store.run((redis) => redis.exists(workerKey)) === 1;
    } catch (error) {
      if (!(error instanceof ReplyError)) throw error; // a worker key that is not a hash exists: a lease
    }
    const expired = taskLeases && lease !== null && /^[0-9]{1,16}$/.test(lease) && Number(lease) < now(this.engine.clock).ms;
    if (alive && !expired) return;
    await this.recover(keys, entry, id, owner, taskLeases, null);
  }

  private async recover(keys: QueueKeys, entry: Buffer, id: string, owner: string, leaseRule: boolean, memory: string | null): Promise<void> {
    const { store, settings, log } = this.engine;
    const outcome = await store.recover(keys, entry, id, owner, settings.maxClaims, now(this.engine.clock), settings.failureTtl, leaseRule);
    if (memory !== null && (outcome === 'requeued' || outcome === 'failed')) this.ownerless.delete(memory);
    if (outcome === 'requeued') {
      const from = leaseRule ? `worker ${owner}, whose lease on it ran out` : owner ? `dead worker ${owner}` : 'an unfinished claim';
      log.warning(`recovered task ${id} (entry ${showEntry(entry)}) from ${from}: back in ${keys.pending}`);
    } else if (outcome === 'failed') {
      log.warning(`task ${id} failed with worker-lost: claimed ${settings.maxClaims} time(s), its worker lost each time`);
      await this.engine.followUp(keys.queue, id);
    }
  }
}
