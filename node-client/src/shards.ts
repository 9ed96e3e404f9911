/**
 * One logical queue over many shards (SPEC.md 11.2): the shard names, the shard of a task id and
 * the shared declaration of the shard count. A queue `emails` with N shards is N ordinary queues
 * `{emails.0}` ... `{emails.N-1}`; a task lives in shard crc32(id) mod N (CRC-32 as zlib computes
 * it, over the id's UTF-8 bytes), so every party finds it from its id alone.
 */
import { randomUUID } from 'node:crypto';

import { ReplyError, type Redis } from 'ioredis';

import { InvalidArgumentsError } from './errors.js';
import type { EnqueueOptions } from './options.js';
import { checkId, describe } from './validate.js';

/** The hash of logical queue name -> shard count (a shared key, like dothis.queues). */
export const SHARDS_KEY = 'dothis.shards';
export const MAX_SHARDS = 1024;

const TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32 (IEEE, as zlib) of the UTF-8 bytes of `text`, as an unsigned 32-bit number. */
export function crc32(text: string): number {
  let c = 0xffffffff;
  for (const byte of Buffer.from(text, 'utf8')) c = (TABLE[(c ^ byte) & 0xff] ?? 0) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** The shard of `id` in a queue of `count` shards. */
export function shardOf(id: string, count: number): number {
  return crc32(id) % count;
}

/** The queue name of shard `index`: `{<name>.<index>}`, hash-tagged. */
export function shardName(name: string, index: number): string {
  return `{${name}.${index}}`;
}

/** Checks a sharded queue's name and count; returns the count. */
export function checkShards(name: string, count: unknown): number {
  if (typeof count !== 'number' || !Number.isInteger(count) || count < 1 || count > MAX_SHARDS) {
    throw new InvalidArgumentsError('shards', `must be an integer from 1 to ${MAX_SHARDS}, got ${describe(count)}`);
  }
  if (/[{}:]/.test(name)) {
    throw new InvalidArgumentsError('name', `${JSON.stringify(name)} holds '{', '}' or ':'; give the plain name (emails): each shard ` +
      'gets its own hash tag, {emails.0} ... (SPEC.md 11.2)');
  }
  return count;
}

/** The error of a shard count other than the declared one. */
export function shardMismatch(name: string, declared: number, configured: number): InvalidArgumentsError {
  return new InvalidArgumentsError('shards', `queue ${JSON.stringify(name)} is declared with ${declared} shard(s) in ${SHARDS_KEY}, ` +
    `but this client was given ${configured}: configure every producer and worker of the queue with shards ${declared}, or, ` +
    `once the queue is empty, HDEL ${SHARDS_KEY} ${name} to declare it anew (SPEC.md 11.2)`);
}

/**
 * The shard of a task and its id: its own id's shard, or, for a task with parents, their shard
 * (refused when they are in several, or when a given id lands elsewhere), with a random id drawn
 * until it lands there.
 */
export function placeTask(name: string, count: number, options: EnqueueOptions): [number, string] {
  const refs = options.dependsOn === undefined ? [] : Array.isArray(options.dependsOn) ? options.dependsOn : [options.dependsOn];
  const parents = (refs as unknown[]).map((ref) => (typeof ref === 'string' ? ref : String((ref as { id?: unknown } | null)?.id)));
  const homes = new Set(parents.map((parent) => shardOf(parent, count)));
  if (homes.size > 1) {
    throw new InvalidArgumentsError('dependsOn', `names tasks in different shards of queue ${JSON.stringify(name)}; a task and ` +
      'its parents share one shard (SPEC.md 11.2)');
  }
  const [home] = homes;
  let id = options.id;
  if (id !== undefined && home !== undefined && shardOf(checkId(id), count) !== home) {
    throw new InvalidArgumentsError('id', `${JSON.stringify(id)} lands in shard ${shardOf(id, count)}, its parents in shard ${home}: ` +
      'a task and its parents share one shard (SPEC.md 11.2); leave id out to get one that lands there');
  }
  while (id === undefined || (home !== undefined && shardOf(id, count) !== home)) id = randomUUID();
  return [shardOf(id, count), id];
}

/**
 * Declares `count` shards for `name` in dothis.shards unless declared already (HSETNX, then HGET,
 * each a command of its own), and refuses another declared count. A refused command (an ACL user
 * without access to the hash) skips the check.
 */
export async function declareShards(run: <T>(command: (redis: Redis) => Promise<T>) => Promise<T>, name: string, count: number): Promise<void> {
  const mine = String(count);
  const stored = await run(async (redis) => {
    await redis.hsetnx(SHARDS_KEY, name, mine).catch((error: unknown) => {
      if (!(error instanceof ReplyError)) throw error;
    });
    return redis.hget(SHARDS_KEY, name).catch((error: unknown) => {
      if (error instanceof ReplyError) return null;
      throw error;
    });
  });
  if (stored !== null && /^\d+$/.test(stored) && stored !== mine) throw shardMismatch(name, Number(stored), count);
}

/** Enqueues each spec into the shard `place` gives it, one pipelined batch per shard; the tasks in the order of `list`. */
export async function enqueueSpread<S extends EnqueueOptions, T, Q extends { enqueueMany(specs: S[]): Promise<T[]> }>(
  list: readonly S[], place: (spec: S) => [Q, string],
): Promise<T[]> {
  const groups = new Map<Q, { index: number; spec: S }[]>();
  list.forEach((spec, index) => {
    const [part, id] = place(spec);
    const group = groups.get(part);
    if (group) group.push({ index, spec: { ...spec, id } });
    else groups.set(part, [{ index, spec: { ...spec, id } }]);
  });
  const tasks = new Array<T>(list.length);
  await Promise.all([...groups].map(async ([part, items]) => {
    const made = await part.enqueueMany(items.map((item) => item.spec));
    items.forEach((item, i) => { const task = made[i]; if (task !== undefined) tasks[item.index] = task; });
  }));
  return tasks;
}
