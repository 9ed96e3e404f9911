/**
 * What happens after a task ends (SPEC.md 5.13): its callback task, and the release of the tasks
 * waiting for it. finish.lua (and recover, cancel, release) put the id of an ended task that has a
 * callback for its outcome or dependents in `<queue>:releasing`; `run` does the work and then
 * removes the id. Every step is idempotent (the callback's id is fixed and enqueue never replaces
 * it; release.lua first removes the child from the parent's set), so the worker that finished the
 * task and any reaper may both run it. `drain` runs what a dead worker left in `<queue>:releasing`;
 * `checkWaiting` is the parents check, which fails children whose parent's hash vanished.
 */
import { createHash } from 'node:crypto';

import { type Clock } from '../clock.js';
import { InvalidArgumentsError } from '../errors.js';
import { LIMITS } from '../protocol.js';
import { checkId } from '../validate.js';
import { encodeValue } from './callable.js';
import { now } from './engine.js';
import { parseStrict } from './json.js';
import { type QueueKeys } from './keys.js';
import { type Log } from './log.js';
import { type Store } from './store.js';

const BATCH = 100;
const RECHECK_MS = 60_000;
const VANISHED = 'vanished';

/** The id of a task's callback: cb- and the hex SHA1 of the id, so it is enqueued at most once. */
export const callbackId = (id: string): string => `cb-${createHash('sha1').update(id, 'utf8').digest('hex')}`;

/** The function and args of the callback an ended task asks for (SPEC.md 5.13 step 1), or null. */
export function callbackCall(id: string, fields: Record<string, string>): { fn: string; args: string } | null {
  const outcome = fields.result ?? '';
  const succeeded = outcome === 'successful';
  const fn = succeeded ? fields['on-success'] : fields['on-failure'];
  if (!fn) return null;
  let value: unknown = null;
  if (succeeded) {
    try {
      value = parseStrict(fields['result-value'] ?? 'null');
    } catch {
      value = null;
    }
  }
  const error = succeeded ? null : { code: fields['error-code'] ?? '', reason: fields['error-reason'] ?? '' };
  const encoded = encodeValue({ id, outcome, value, error }, LIMITS['json-max-depth'] + 2);
  return encoded.kind === 'returned' ? { fn, args: encoded.json } : null;
}

function parentsOf(dependsOn: string | null): string[] {
  let parents: unknown;
  try {
    parents = dependsOn ? JSON.parse(dependsOn) : [];
  } catch {
    return [];
  }
  if (!Array.isArray(parents)) return [];
  return parents.filter((parent): parent is string => {
    try {
      return typeof parent === 'string' && checkId(parent) === parent;
    } catch (error) {
      if (error instanceof InvalidArgumentsError) return false;
      throw error;
    }
  });
}

export class Followups {
  constructor(private readonly store: Store, private readonly clock: Clock, private readonly failureTtl: number,
    private readonly log: Log) {}

  /** The follow-ups of `id`, and of every task they made fail, then `SREM <queue>:releasing`. */
  async run(keys: QueueKeys, id: string): Promise<void> {
    const todo = [id];
    for (let current = todo.pop(); current !== undefined; current = todo.pop()) {
      const task = current;
      const fields = await this.store.run((redis) => redis.hgetall(keys.task(task)));
      const result = fields.result;
      if (fields.state === 'finished' && result) {
        await this.callback(keys, task, fields);
        todo.push(...await this.releaseChildren(keys, task, result));
      } else if (Object.keys(fields).length === 0) {
        todo.push(...await this.releaseChildren(keys, task, VANISHED)); // its hash is gone: its children must not wait forever
      }
      await this.store.run((redis) => redis.srem(keys.releasing, task));
    }
  }

  /** Follow-ups left in `<queue>:releasing` (a worker died before it ran them). */
  async drain(keys: QueueKeys): Promise<void> {
    const ids = await this.store.run((redis) => redis.srandmemberBuffer(keys.releasing, BATCH));
    for (const raw of ids) {
      const parsed = keys.parseEntry(raw);
      if ('problem' in parsed) await this.store.run((redis) => redis.srem(keys.releasing, raw));
      else await this.run(keys, parsed.id);
    }
  }

  /**
   * The parents check: waiting tasks whose check is due; a parent with no hash fails its child
   * (release.lua with `vanished`); a child still waiting is checked again in a minute. The next
   * check is written before the releases, so a child seen waiting never has a due check.
   */
  async checkWaiting(keys: QueueKeys): Promise<void> {
    const at = now(this.clock);
    const ids = await this.store.run((redis) => redis.zrangebyscoreBuffer(keys.waiting, '-inf', at.ms, 'LIMIT', 0, BATCH));
    const failed: string[] = [];
    for (const raw of ids) {
      const parsed = keys.parseEntry(raw);
      const [state, dependsOn] = 'id' in parsed
        ? await this.store.run((redis) => redis.hmget(keys.task(parsed.id), 'state', 'depends-on')) : [null, null];
      if (!('id' in parsed) || state !== 'waiting') {
        await this.store.run((redis) => redis.zrem(keys.waiting, raw));
        continue;
      }
      const child = parsed.id;
      await this.store.run((redis) => redis.zadd(keys.waiting, at.ms + RECHECK_MS, child));
      for (const parent of parentsOf(dependsOn ?? null)) {
        if (await this.store.run((redis) => redis.exists(keys.task(parent))) === 1) continue;
        if (await this.store.release(keys, child, parent, VANISHED, now(this.clock), this.failureTtl) === 3) {
          this.log.warning(`task ${child} failed: task ${parent} it depends on vanished`);
          failed.push(child);
          break;
        }
      }
    }
    for (const child of failed) await this.run(keys, child);
  }

  private async callback(keys: QueueKeys, id: string, fields: Record<string, string>): Promise<void> {
    const call = callbackCall(id, fields);
    if (call === null) return;
    const child = callbackId(id);
    const created = await this.store.enqueueNew(keys, child, [
      'function', call.fn, 'state', 'pending', 'args', call.args, 'pending-created', now(this.clock).iso, 'callback-of', id,
    ]);
    if (created === 1) this.log.debug(`enqueued callback ${call.fn} ${child} of ${id}`);
  }

  /** Tells each child waiting for `parent`; returns the children this made fail (their follow-ups are next). */
  private async releaseChildren(keys: QueueKeys, parent: string, result: string): Promise<string[]> {
    const failed: string[] = [];
    const children = await this.store.run((redis) => redis.smembersBuffer(keys.dependents(parent)));
    for (const raw of children) {
      const parsed = keys.parseEntry(raw);
      if ('problem' in parsed) {
        await this.store.run((redis) => redis.srem(keys.dependents(parent), raw));
        continue;
      }
      if (await this.store.release(keys, parsed.id, parent, result, now(this.clock), this.failureTtl) === 3) failed.push(parsed.id);
    }
    return failed;
  }
}
