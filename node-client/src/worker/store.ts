/**
 * The worker's Redis calls: each Lua script of lua/ (the exact bytes, generated into SCRIPTS at
 * build) run through ioredis's defineCommand (EVALSHA, with EVAL on NOSCRIPT), with the KEYS and
 * ARGV of SPEC.md section 5, on a Link of connection.ts. Entries travel as Buffers, byte for byte.
 */
import { type Redis } from 'ioredis';

import { type Link } from '../connection.js';
import { SCRIPTS } from '../generated/scripts.js';
import { type QueueKeys } from './keys.js';

type Arg = string | Buffer | number;
type Command = (...args: Arg[]) => Promise<unknown>;

/** name of the command on the connection -> [script, fixed number of keys (undefined: the first argument says)] */
const COMMANDS = {
  start: ['dothisStart', SCRIPTS.start, 2],
  finish: ['dothisFinish', SCRIPTS.finish, 6],
  retry: ['dothisRetry', SCRIPTS.retry, 3],
  recover: ['dothisRecover', SCRIPTS.recover, undefined],
  renew: ['dothisRenew', SCRIPTS.renew, 1],
  reject: ['dothisReject', SCRIPTS.reject, 2],
  promote: ['dothisPromote', SCRIPTS.promote, 3],
  release: ['dothisRelease', SCRIPTS.release, 7],
  progress: ['dothisProgress', SCRIPTS.progress, 1],
  enqueue: ['dothisEnqueue', SCRIPTS.enqueue, undefined],
  fire: ['dothisFire', SCRIPTS.fire, 3],
  take: ['dothisTake', SCRIPTS.take, 2],
} as const;

/** The most entries one call of take.lua takes (SPEC.md 5.18). */
export const TAKE_MAX = 1000;

type ScriptName = keyof typeof COMMANDS;

export type StartReply =
  | { status: 'ok'; claims: number; fields: Map<string, Buffer> }
  | { status: 'too-large'; claims: number; detail: string }
  | { status: 'invalid-state'; claims: number; state: string }
  | { status: 'duplicate'; state: string }
  | { status: 'missing' }
  | { status: 'wrong-type'; type: string }
  | { status: 'lost' };

/**
 * One entry take.lua moved into executing (SPEC.md 5.18): the entry byte for byte and start.lua's
 * reply for it, or 'unstarted' (claimed, not started: the worker rejects or starts it at once).
 */
export interface Taken {
  entry: Buffer;
  reply: StartReply | { status: 'unstarted' };
}

/** What identifies one claim of a task: the entry as claimed, the id, the owner and the fencing token. */
export interface Claim {
  keys: QueueKeys;
  entry: Buffer;
  id: string;
  workerId: string;
  claims: number;
}

/** A field/value list as a Map of name (UTF-8, invalid bytes replaced) to raw value. */
export function fieldMap(pairs: Buffer[]): Map<string, Buffer> {
  const fields = new Map<string, Buffer>();
  for (let index = 0; index + 1 < pairs.length; index += 2) {
    const [name, value] = [pairs[index], pairs[index + 1]];
    if (name && value) fields.set(name.toString('utf8'), value);
  }
  return fields;
}

function parseStart(reply: unknown): StartReply {
  const [rawStatus, second, third] = reply as [Buffer, unknown, unknown];
  const status = rawStatus.toString();
  const text = (value: unknown): string => (Buffer.isBuffer(value) ? value.toString('utf8') : String(value));
  switch (status) {
    case 'ok': return { status, claims: Number(second), fields: fieldMap(third as Buffer[]) };
    case 'too-large': return { status, claims: Number(second), detail: text(third) };
    case 'invalid-state': return { status, claims: Number(second), state: text(third) };
    case 'duplicate': return { status, state: text(second) };
    case 'wrong-type': return { status, type: text(second) };
    case 'missing':
    case 'lost': return { status };
    default: throw new Error(`start.lua answered ${status}`);
  }
}

function parseTake(reply: unknown): Taken[] {
  return (reply as [Buffer, [Buffer, ...unknown[]]][]).map(([entry, item]) => (
    item[0].toString() === 'unstarted' ? { entry, reply: { status: 'unstarted' } } : { entry, reply: parseStart(item) }));
}

export class Store {
  constructor(readonly link: Link) {
    for (const [name, lua, numberOfKeys] of Object.values(COMMANDS)) {
      link.redis.defineCommand(name, numberOfKeys === undefined ? { lua } : { lua, numberOfKeys });
    }
  }

  /** Runs commands on the ready connection (Link.run: connection failures become ConnectionFailedError). */
  run<T>(command: (redis: Redis) => Promise<T>): Promise<T> {
    return this.link.run(command);
  }

  private script(name: ScriptName, args: Arg[], buffers = false): Promise<unknown> {
    return this.link.run((redis) => {
      const command = (redis as unknown as Record<string, Command | undefined>)[`${COMMANDS[name][0]}${buffers ? 'Buffer' : ''}`];
      if (!command) throw new Error(`script ${name} is not defined on this connection`);
      return command.apply(redis, args);
    });
  }

  /** start.lua (SPEC.md 5.3). */
  async start(keys: QueueKeys, entry: Buffer, id: string, workerId: string, now: string, limits: { maxValueBytes: number; maxFields: number },
    leaseExpires: number | null): Promise<StartReply> {
    const args: Arg[] = [keys.task(id), keys.executing, entry, workerId, now, limits.maxValueBytes, limits.maxFields];
    if (leaseExpires !== null) args.push(leaseExpires);
    return parseStart(await this.script('start', args, true));
  }

  /**
   * take.lua (SPEC.md 5.18): claims and starts up to `count` entries (1 to TAKE_MAX) of one queue in
   * one call, in claim order; [] when pending was empty. `leaseExpires` null: no task lease.
   */
  async take(keys: QueueKeys, workerId: string, now: string, limits: { maxValueBytes: number; maxFields: number },
    leaseExpires: number | null, count: number): Promise<Taken[]> {
    if (!Number.isSafeInteger(count) || count < 1 || count > TAKE_MAX) throw new RangeError(`take count must be an integer from 1 to ${TAKE_MAX}, got ${count}`);
    return parseTake(await this.script('take', [
      keys.pending, keys.executing, workerId, now, limits.maxValueBytes, limits.maxFields, leaseExpires ?? '', count, keys.task(''),
    ], true));
  }

  /** finish.lua (SPEC.md 5.4, 5.5): 1, 2 (follow-ups due), 0 (fenced) or -1 (hash gone). */
  async finish(claim: Claim, registry: 'succeeded' | 'failed', defaultTtl: number, horizonMs: number, nowMs: number,
    fields: string[]): Promise<number> {
    const { keys, id } = claim;
    return Number(await this.script('finish', [
      keys.task(id), keys.executing, keys.failed, keys.succeeded, keys.dependents(id), keys.releasing,
      claim.entry, claim.workerId, claim.claims, keys.results, keys.task(id), id, nowMs, registry, defaultTtl, horizonMs, ...fields,
    ]));
  }

  /** retry.lua (SPEC.md 5.10): 1, 0 (fenced) or -1 (hash gone). */
  async retry(claim: Claim, dueMs: number, fields: string[]): Promise<number> {
    const { keys, id } = claim;
    return Number(await this.script('retry', [
      keys.task(id), keys.executing, keys.scheduled, claim.entry, claim.workerId, claim.claims, dueMs, ...fields,
    ]));
  }

  /** recover.lua (SPEC.md 5.7); `owner` '' for an ownerless entry. */
  async recover(keys: QueueKeys, entry: Buffer, id: string, owner: string, maxClaims: number, now: { iso: string; ms: number },
    failureTtl: number, leaseRule: boolean): Promise<string> {
    const taskKeys = [keys.task(id), keys.executing, keys.pending, keys.failed, keys.dependents(id), keys.releasing];
    if (owner !== '') taskKeys.push(keys.worker(owner));
    const args: Arg[] = [entry, owner, maxClaims, now.iso, keys.results, keys.task(id), id, now.ms];
    if (owner !== '') args.push(failureTtl, leaseRule ? 'lease' : '');
    return String(await this.script('recover', [taskKeys.length, ...taskKeys, ...args]));
  }

  /** renew.lua (SPEC.md 5.6): true when the worker still holds the task. */
  async renew(claim: Claim, expiresMs: number): Promise<boolean> {
    return Number(await this.script('renew', [claim.keys.task(claim.id), claim.workerId, claim.claims, expiresMs])) === 1;
  }

  /** reject.lua (SPEC.md 5.8). */
  async reject(keys: QueueKeys, entry: Buffer, record: string, rejectedMax: number): Promise<number> {
    return Number(await this.script('reject', [keys.executing, keys.rejected, entry, record, rejectedMax]));
  }

  /** promote.lua (SPEC.md 5.11); `id` null for an entry whose id is invalid (the key `<queue>:task:` stands in). */
  async promote(keys: QueueKeys, entry: Buffer, id: string | null, nowMs: number): Promise<number> {
    return Number(await this.script('promote', [keys.task(id ?? ''), keys.scheduled, keys.pending, entry, nowMs]));
  }

  /** release.lua (SPEC.md 5.13): 0, 1, 2 or 3. */
  async release(keys: QueueKeys, child: string, parent: string, result: string, now: { iso: string; ms: number },
    failureTtl: number): Promise<number> {
    return Number(await this.script('release', [
      keys.task(child), keys.pending, keys.dependents(parent), keys.failed, keys.dependents(child), keys.releasing, keys.waiting,
      child, parent, result, now.iso, now.ms, keys.results, keys.task(child), failureTtl,
    ]));
  }

  /** progress.lua (SPEC.md 5.16): true when written. */
  async progress(claim: Claim, json: string): Promise<boolean> {
    const { keys, id } = claim;
    return Number(await this.script('progress', [keys.task(id), claim.claims, claim.workerId, json, keys.progress, keys.task(id)])) === 1;
  }

  /** fire.lua (SPEC.md 5.15): 1 (fired), 2 (armed) or 0 (fired already). */
  async fire(keys: QueueKeys, name: string, occurrenceMs: number, id: string, fields: string[]): Promise<number> {
    return Number(await this.script('fire', [keys.periodic, keys.task(id), keys.pending, name, occurrenceMs, id, ...fields]));
  }

  /** enqueue.lua of a task with no parents at the back of pending, never replacing (a callback, SPEC.md 5.13). */
  async enqueueNew(keys: QueueKeys, id: string, fields: string[]): Promise<number> {
    const taskKeys = [keys.task(id), keys.pending, keys.scheduled];
    return Number(await this.script('enqueue', [taskKeys.length, ...taskKeys, id, 'back', '0', '0', ...fields]));
  }
}
