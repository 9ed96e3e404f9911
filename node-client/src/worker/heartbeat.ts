/**
 * The worker's leases (SPEC.md 5.6, 9.1, 9.2), on a connection of their own so that no other
 * command delays them: one worker key per queue served, written with every field when the worker
 * registers and renewed every heartbeat-ms (with the `running` manifest) in the same MULTI as its
 * PEXPIRE and its score in `<queue>:workers`; the queues listed in `dothis.queues` (2.3); and a
 * task lease per held task, renewed with renew.lua. A key found expired is written whole again; a
 * task whose renewal says 0 is no longer this worker's: its try is stopped and nothing recorded.
 */
import { hostname } from 'node:os';

import { ReplyError } from 'ioredis';

import { PROTOCOL_VERSION, SHARED_KEYS } from '../protocol.js';
import { now, type Engine, type Held } from './engine.js';
import { type QueueKeys } from './keys.js';
import { type Store } from './store.js';
import { VERSION } from './version.js';

const RUNNING_MAX = 100;

export class Heartbeat {
  private readonly fields: Record<string, string>;
  /** When the worker first registered, on the Redis clock (measured by then). */
  private started: string | null = null;

  /** `store` is the heartbeat's own connection. */
  constructor(private readonly engine: Engine, private readonly store: Store, private readonly lanes: QueueKeys[],
    private readonly onLost: (held: Held) => void) {
    const { settings } = engine;
    this.fields = {
      id: settings.workerId,
      host: hostname() || 'unknown',
      pid: String(process.pid),
      language: 'node',
      functions: JSON.stringify([...engine.functions.keys()]),
      queues: JSON.stringify(lanes.map((keys) => keys.queue)),
      protocol: String(PROTOCOL_VERSION),
      implementation: 'dothis-node',
      version: VERSION,
      concurrency: String(settings.concurrency),
      leases: 'task',
    };
  }

  /** The tasks of a queue whose try runs now: the worker key's `running` field. */
  private running(keys: QueueKeys): string {
    const list = [...this.engine.held.values()]
      .filter((held) => held.claim.keys === keys && held.since !== null)
      .slice(0, RUNNING_MAX)
      .map((held) => ({ id: held.claim.id, function: held.fn, since: held.since }));
    return JSON.stringify(list);
  }

  /** Writes every worker key whole (SPEC.md 5.6's first block), dropping ids of workers that died a lease ago. */
  async register(lanes: QueueKeys[] = this.lanes): Promise<void> {
    const { leaseMs, workerId } = this.engine.settings;
    const at = now(this.engine.clock);
    this.started ??= at.iso;
    for (const keys of lanes) {
      const fields = { ...this.fields, started: this.started, heartbeat: at.iso, running: this.running(keys) };
      await this.store.run((redis) => redis.multi()
        .hset(keys.worker(workerId), fields)
        .pexpire(keys.worker(workerId), leaseMs)
        .zremrangebyscore(keys.workers, '-inf', `(${at.ms - leaseMs}`)
        .zadd(keys.workers, at.ms + leaseMs, workerId)
        .exec());
    }
    await this.listQueues(at.ms);
  }

  /** One heartbeat: every worker key, the registry of queues, then the task leases. */
  async beat(): Promise<void> {
    const { leaseMs, workerId } = this.engine.settings;
    const at = now(this.engine.clock);
    for (const keys of this.lanes) {
      const key = keys.worker(workerId);
      const replies = await this.store.run((redis) => redis.multi()
        .hset(key, 'heartbeat', at.iso, 'running', this.running(keys))
        .pexpire(key, leaseMs)
        .zadd(keys.workers, at.ms + leaseMs, workerId)
        .exec());
      const [error, added] = replies?.[0] ?? [null, 0];
      if (error) throw error;
      if (Number(added) > 0) {
        this.engine.log.warning(`worker key ${key} had expired (the worker was stalled or Redis lost it); its tasks may run elsewhere too`);
        await this.register([keys]);
      }
    }
    await this.listQueues(at.ms);
    await this.renew(at.ms + leaseMs);
  }

  /** A worker that stops: its keys deleted and its id out of each registry, atomically per queue (SPEC.md 9.4). */
  async leave(): Promise<void> {
    const { workerId } = this.engine.settings;
    for (const keys of this.lanes) {
      await this.store.run((redis) => redis.multi().del(keys.worker(workerId)).zrem(keys.workers, workerId).exec());
    }
  }

  private async renew(expiresMs: number): Promise<void> {
    const held = [...this.engine.held.values()];
    const renewed = await Promise.all(held.map((task) => this.store.renew(task.claim, expiresMs)));
    held.forEach((task, index) => {
      if (!renewed[index] && this.engine.held.get(task.claim.keys.task(task.claim.id)) === task) this.onLost(task);
    });
  }

  /** ZADD dothis.queues (SPEC.md 2.3): informative, so a refused write is ignored. */
  private async listQueues(ms: number): Promise<void> {
    const members = this.lanes.flatMap((keys) => [ms, keys.queue]);
    await this.store.run((redis) => redis.zadd(SHARED_KEYS.queues, ...members)).catch((error: unknown) => {
      if (!(error instanceof ReplyError)) throw error;
    });
  }
}
