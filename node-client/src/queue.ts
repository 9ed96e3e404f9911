/** The producer: a Queue enqueues tasks and hands out Task handles to read and wait on them. */
import { randomUUID } from 'node:crypto';

import { ReplyError, type ChainableCommander, type Redis } from 'ioredis';

import { Clock } from './clock.js';
import { checkQueueNames, DEFAULT_URL, Link } from './connection.js';
import {
  DependencyError, InvalidArgumentsError, QueueClosedError, TaskExistsError, TaskNotFoundError, WaitTimeoutError,
} from './errors.js';
import {
  enqueueCall, hashOf, randomUUIDs, stamp, writable, writeCalls, type Prepared, type QueueKeys, type Reply, type Stamp,
} from './enqueue.js';
import { SCRIPT_MANIFEST } from './generated/manifest.js';
import { SCRIPTS } from './generated/scripts.js';
import { PLAIN, planOptions, type ConnectionOptions, type EnqueueOptions } from './options.js';
import {
  dependentsKey, failedKey, outcomesChannel, pendingKey, releasingKey, resultsChannel, scheduledKey, SHARED_KEYS, succeededKey, TASK_KEY_ENDS_WITH_ID, taskKey,
  progressChannel, waitingKey,
} from './protocol.js';
import { parseProgress, Task, type CancelResult, type DeleteResult, type Progress, type TaskSource, type WaitOptions } from './task.js';
import { formatMicros } from './time.js';
import {
  checkFunctionName, checkId, checkQueueName, checkTaskHash, describe, serializeArgs, validArgsJson, type Args,
} from './validate.js';
import { checkShards, declareShards, enqueueSpread, placeTask, shardName, shardOf } from './shards.js';
import { ResultWaits } from './waits.js';

export interface QueueOptions extends ConnectionOptions {
  /** Redis URL. Default: $DOTHIS_REDIS_URL, else redis://127.0.0.1:6379/0. */
  url?: string;
  /** How long a call waits for a (re)connection before failing, in ms. Default 3000. */
  connectTimeout?: number;
  /**
   * One logical queue over this many shards, `{<name>.0}` ... (SPEC.md 11.2): a task goes to the
   * shard of its id (crc32(id) mod N), and every producer and worker of the queue uses the same N.
   */
  shards?: number;
}

export type { EnqueueOptions } from './options.js';

/** One task for enqueueMany: the function, its args and the options enqueue takes. */
export interface TaskSpec extends EnqueueOptions {
  fn: string;
  args?: Args;
}

/** A page of a list or registry: skip `start` entries, return at most `count` (default 100). */
export interface PageOptions {
  start?: number;
  count?: number;
}

const ENQUEUE_COMMAND = 'dothisEnqueue';
const CANCEL_COMMAND = 'dothisCancel';
const CANCEL_RESULTS: Readonly<Record<number, CancelResult>> = { 1: 'cancelled', 2: 'requested', 0: 'finished' };
const DELETE_COMMAND = 'dothisDelete';
const DELETE_RESULTS: Readonly<Record<number, DeleteResult>> = { 1: 'deleted', 2: 'running' };
/** enqueueMany writes BATCH scripts at a time and keeps up to WINDOW batches in flight. */
const BATCH = 1000;
const WINDOW = 8;
/** Distinct task hashes a Stamp remembers as checked (Stamp.checked); beyond, it starts afresh. */
const CHECKED_HASHES = 4096;

/** Maps with at most `limit` calls in flight; results keep the order of `items`. After a failure, no call starts. */
async function mapLimited<T, R>(items: readonly T[], limit: number, map: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length) {
      const index = next;
      next += 1;
      try {
        results[index] = await map(items[index] as T);
      } catch (error) {
        next = items.length;
        throw error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return results;
}

/** A script defined with defineCommand: (number of keys, ...keys, ...argv) when numberOfKeys is not fixed. */
type ScriptCommand = (...keysAndArgv: (string | number)[]) => Promise<number>;

function scriptVia(target: Redis | ChainableCommander, name: string): ScriptCommand {
  const command = (target as unknown as Record<string, ScriptCommand | undefined>)[name];
  if (!command) throw new Error(`script ${name} is not defined on this connection`);
  return command.bind(target);
}

function runEnqueue(target: Redis | ChainableCommander, queue: QueueKeys, task: Prepared): Promise<number> {
  const { keys, argv } = enqueueCall(queue, task);
  return scriptVia(target, ENQUEUE_COMMAND)(keys.length, ...keys, ...argv);
}

/**
 * KEYS and ARGV of cancel.lua (SPEC.md 5.14) for one task. The default failure-ttl is '0': this
 * client has none, so the task's own failure-ttl or the protocol default applies (SPEC.md 3.1).
 */
export function deleteCall(queue: string, id: string, key: string): { keys: string[]; argv: string[] } {
  return {
    keys: [key, pendingKey(queue), scheduledKey(queue), waitingKey(queue), failedKey(queue), succeededKey(queue),
      dependentsKey(queue, id), releasingKey(queue)],
    argv: [id, key],
  };
}

export function cancelCall(queue: string, id: string, key: string, now: bigint): { keys: string[]; argv: string[] } {
  return {
    keys: [key, pendingKey(queue), scheduledKey(queue), failedKey(queue), dependentsKey(queue, id), releasingKey(queue), waitingKey(queue)],
    argv: [id, formatMicros(now), String(now / 1000n), resultsChannel(queue), key, '0'],
  };
}

/** The options of a spec that has none (its own keys are fn and args at most). */
const NO_OPTIONS: EnqueueOptions = Object.freeze({});

/** An error of the task at `index` of enqueueMany: an InvalidArgumentsError names it (tasks[<index>].<field>). */
function inTask(index: number, error: unknown): unknown {
  return error instanceof InvalidArgumentsError ? new InvalidArgumentsError(`tasks[${index}].${error.field}`, error.problem) : error;
}

function withoutOptions(spec: object): boolean {
  for (const key in spec) if (key !== 'fn' && key !== 'args' && Object.hasOwn(spec, key)) return false;
  return true;
}

function checkPage(options: unknown): { start: number; count: number } {
  if (options === null || typeof options !== 'object') {
    throw new InvalidArgumentsError('options', `must be an object { start?, count? }, got ${describe(options)}`);
  }
  const { start = 0, count = 100 } = options as PageOptions;
  if (!Number.isSafeInteger(start) || start < 0) throw new InvalidArgumentsError('start', `must be an integer >= 0, got ${describe(start)}`);
  if (!Number.isSafeInteger(count) || count < 0) throw new InvalidArgumentsError('count', `must be an integer >= 0, got ${describe(count)}`);
  return { start, count };
}

export class Queue {
  /** The queue name: every key of the queue starts with "<name>:". */
  readonly name: string;
  /** The Redis URL, password masked. */
  readonly url: string;
  private readonly link: Link;
  /** This machine's offset to the Redis clock (SPEC.md 9.8): every time the queue writes is on Redis's clock. */
  private readonly clock: Clock;
  private readonly options: Required<Pick<QueueOptions, 'url' | 'connectTimeout'>> & ConnectionOptions & { explainRefusals: boolean };
  private readonly source: TaskSource;
  private waits: { link: Link; results: ResultWaits } | undefined;
  private closed = false;
  private readonly taskPrefix: string;
  private readonly keys: QueueKeys;
  private listed: Promise<void> | undefined;
  /** The shards of a sharded queue, in order; undefined for a plain queue. */
  readonly shards: readonly Queue[] | undefined;
  private declared: Promise<void> | undefined;

  constructor(name: string, options: QueueOptions = {}) {
    this.name = checkQueueName(name);
    const { shards, ...plain } = options;
    const count = shards === undefined ? undefined : checkShards(this.name, shards);
    const names = count === undefined ? [this.name] : Array.from({ length: count }, (_, index) => shardName(this.name, index));
    const connectTimeout = options.connectTimeout ?? 3000;
    if (!Number.isFinite(connectTimeout) || connectTimeout <= 0) {
      throw new InvalidArgumentsError('connectTimeout', `must be a positive number of milliseconds, got ${String(connectTimeout)}`);
    }
    const url = options.url ?? process.env.DOTHIS_REDIS_URL ?? DEFAULT_URL;
    checkQueueNames(url, names, options);
    this.options = { url, connectTimeout, tls: options.tls, cluster: options.cluster, explainRefusals: true };
    this.link = new Link({ ...this.options, connectionName: 'dothis-producer' });
    this.link.redis.defineCommand(ENQUEUE_COMMAND, { lua: SCRIPTS.enqueue });
    this.link.redis.defineCommand(DELETE_COMMAND, { numberOfKeys: SCRIPT_MANIFEST.delete.counts.keys, lua: SCRIPTS.delete });
    this.link.redis.defineCommand(CANCEL_COMMAND, { numberOfKeys: SCRIPT_MANIFEST.cancel.counts.keys + SCRIPT_MANIFEST.cancel.counts.optionalKeys, lua: SCRIPTS.cancel });
    this.url = this.link.url;
    this.clock = new Clock({ run: (command) => this.link.run(command), url: this.url });
    this.link.redis.on('ready', () => { this.clock.reconnected(); });
    this.taskPrefix = taskKey(this.name, '');
    this.keys = {
      name: this.name, taskPrefix: this.taskPrefix, pending: pendingKey(this.name), scheduled: scheduledKey(this.name),
      waiting: waitingKey(this.name),
    };
    this.shards = count === undefined ? undefined : names.map((part) => new Queue(part, plain));
    this.source = {
      name: this.name,
      readFields: (key, fields) => this.readFields(key, fields),
      readHash: (key) => this.readHash(key),
      wait: (id, key, waitOptions, fresh) => this.wait(id, key, waitOptions, fresh),
      cancel: (id, key) => this.cancel(id, key),
      delete: (id, key) => this.deleteTask(id, key),
      waitProgress: (id, key, timeout) => this.waitProgress(id, key, timeout),
    };
  }

  /**
   * Creates a task that runs `fn(**args)` on a worker and returns its handle: pending, scheduled
   * (delay, at) or waiting for its parents (dependsOn). A finished task with the same id is
   * replaced. Rejects with TaskExistsError when an unfinished task has `options.id` (nothing is
   * written), DependencyError when a parent failed or does not exist (nothing is written),
   * InvalidArgumentsError naming the argument or option, ConnectionFailedError, or QueueClosedError.
   */
  async enqueue(fn: string, args: Args = {}, options: EnqueueOptions = {}): Promise<Task> {
    this.assertOpen();
    if (this.shards) {
      await this.declare();
      const [part, id] = this.place(options);
      return part.enqueue(fn, args, { ...options, id });
    }
    const task = await this.onRedisClock((at) => this.prepare(fn, args, options, at));
    const [reply] = await this.link.run((redis) => this.write(redis, [task]));
    if (reply !== 1) throw await this.refusal(task, reply as number);
    return new Task(this.source, task.id, task.key, options.id === undefined);
  }

  /**
   * Enqueues many tasks, pipelined. Every task is validated before anything is written. Ids that
   * already exist are left untouched and reported in one TaskExistsError after the others were
   * enqueued (its enqueuedIds lists them).
   */
  async enqueueMany(specs: Iterable<TaskSpec>): Promise<Task[]> {
    this.assertOpen();
    const list = [...specs];
    if (this.shards) return this.enqueueSharded(list);
    const prepared = await this.onRedisClock((at) => this.prepareAll(list, at), (tasks, at) => this.restamp(list, tasks, at));
    const chunks: Prepared[][] = [];
    for (let start = 0; start < prepared.length; start += BATCH) chunks.push(prepared.slice(start, start + BATCH));
    const replies = (await mapLimited(chunks, WINDOW, (chunk) => this.link.run((redis) => this.write(redis, chunk)))).flat();
    const refused = prepared.filter((_, i) => replies[i] !== 1);
    if (refused.length > 0) {
      const enqueued = prepared.filter((_, i) => replies[i] === 1).map((task) => task.id);
      const existing = prepared.filter((_, i) => replies[i] === 0).map((task) => task.id);
      const orphans = prepared.flatMap((task, i) => (replies[i] === -2 || replies[i] === -3 ? [{ task, reply: replies[i] }] : []));
      let dependencyError: DependencyError | undefined;
      const [first] = orphans;
      if (first) {
        const single = await this.refusal(first.task, first.reply);
        if (!(single instanceof DependencyError)) throw single;
        dependencyError = new DependencyError(single.id, single.reason, single.parentId, orphans.map((o) => o.task.id), enqueued);
      }
      if (existing.length > 0) {
        const error = new TaskExistsError(existing as [string, ...string[]], enqueued);
        if (dependencyError) Object.defineProperty(error, 'cause', { value: dependencyError, configurable: true, writable: true });
        throw error;
      }
      if (dependencyError) throw dependencyError;
      throw new Error(`enqueue.lua answered ${refused.length} unexpected replies`);
    }
    return prepared.map((task, i) => new Task(this.source, task.id, task.key, list[i]?.id === undefined));
  }

  /** A handle on the task with this id, without reading Redis (see getTask). */
  task(id: string): Task {
    if (this.shards) return this.shard(checkId(id)).task(id);
    return new Task(this.source, checkId(id), taskKey(this.name, id));
  }

  /** The task with this id, or null when its hash does not exist. */
  async getTask(id: string): Promise<Task | null> {
    this.assertOpen();
    if (this.shards) {
      // A task a worker made (a callback, an occurrence) lives in the shard of what made it.
      const home = this.shard(checkId(id));
      for (const part of [home, ...this.shards.filter((other) => other !== home)]) {
        const found = await part.getTask(id);
        if (found) return found;
      }
      return null;
    }
    const task = this.task(id);
    const type = await this.link.run((redis) => redis.type(task.key));
    return type === 'hash' ? task : null;
  }

  /** How many entries wait in <queue>:pending. */
  async length(): Promise<number> {
    this.assertOpen();
    if (this.shards) return (await Promise.all(this.shards.map((part) => part.length()))).reduce((a, b) => a + b, 0);
    return this.link.run((redis) => redis.llen(pendingKey(this.name)));
  }

  /**
   * Ids in <queue>:pending, oldest first (the next to run first): workers take entries from the
   * right, so this reads the list from the right. An entry in full-key form is given as its id.
   */
  async pendingIds(options: PageOptions = {}): Promise<string[]> {
    const { start, count } = checkPage(options);
    this.assertOpen();
    if (this.shards) return this.acrossShards((part) => part.pendingIds({ count: start + count }), start, count);
    if (count === 0) return [];
    const entries = await this.link.run((redis) => redis.lrange(pendingKey(this.name), -(start + count), -(start + 1)));
    return entries.reverse().map((entry) => (entry.startsWith(this.taskPrefix) ? entry.slice(this.taskPrefix.length) : entry));
  }

  /** Ids of tasks that ended without success (<queue>:failed), newest first. */
  async failedIds(options: PageOptions = {}): Promise<string[]> {
    return this.registryPage(failedKey(this.name), options);
  }

  /** Ids of tasks that succeeded (<queue>:succeeded), newest first. */
  async succeededIds(options: PageOptions = {}): Promise<string[]> {
    return this.registryPage(succeededKey(this.name), options);
  }

  /** How many tasks wait in <queue>:scheduled (delayed tasks and retries). */
  async scheduledCount(): Promise<number> {
    this.assertOpen();
    if (this.shards) return (await Promise.all(this.shards.map((part) => part.scheduledCount()))).reduce((a, b) => a + b, 0);
    return this.link.run((redis) => redis.zcard(scheduledKey(this.name)));
  }

  /** Rejects pending waits with QueueClosedError and closes both connections. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const waits = this.waits;
    waits?.results.rejectAll(new QueueClosedError(this.name));
    // The subscriber has no reply worth waiting for, and a QUIT on a connection that died silently
    // would never be answered: it is dropped at once.
    waits?.link.redis.disconnect();
    await Promise.all((this.shards ?? []).map((part) => part.close()));
    await this.link.close();
  }

  /** The shard that holds (or will hold) the task `id`. */
  shard(id: string): Queue {
    const shards = this.shards ?? [this];
    return shards[shardOf(id, shards.length)] ?? this;
  }

  /** Once: declares the shard count in dothis.shards, or refuses another count (SPEC.md 11.2). */
  private declare(): Promise<void> {
    this.declared ??= declareShards((command) => this.link.run(command), this.name, this.shards?.length ?? 1);
    this.declared.catch(() => { this.declared = undefined; });
    return this.declared;
  }

  /** The shard of a task and its id (SPEC.md 11.2). */
  private place(options: EnqueueOptions): [Queue, string] {
    const shards = this.shards ?? [this];
    const [index, id] = placeTask(this.name, shards.length, options);
    return [shards[index] ?? this, id];
  }

  private async enqueueSharded(list: TaskSpec[]): Promise<Task[]> {
    await this.declare();
    return enqueueSpread(list, (spec) => this.place(spec));
  }

  private async acrossShards(read: (part: Queue) => Promise<string[]>, start: number, count: number): Promise<string[]> {
    const pages = await Promise.all((this.shards ?? []).map(read));
    return pages.flat().slice(start, start + count);
  }

  private assertOpen(): void {
    if (this.closed) throw new QueueClosedError(this.name);
  }

  private async registryPage(key: string, options: PageOptions): Promise<string[]> {
    const { start, count } = checkPage(options);
    this.assertOpen();
    if (this.shards) {
      const suffix = key.slice(this.name.length); // the same key of each shard
      return this.acrossShards((part) => part.registryPage(part.name + suffix, { count: start + count }), start, count);
    }
    if (count === 0) return [];
    return this.link.run((redis) => redis.zrevrange(key, start, start + count - 1));
  }

  /**
   * `prepare(at)` at the current time on the Redis clock. Before the connection's offset is known,
   * the input is first checked at this machine's time, so invalid input is refused without a round
   * trip; then the offset is measured (one TIME) and the input prepared again on the Redis clock,
   * or, given `again`, what was prepared is brought to the Redis clock by it.
   */
  private async onRedisClock<T>(prepare: (at: Stamp) => T, again?: (value: T, at: Stamp) => T): Promise<T> {
    if (this.clock.measured) return prepare(stamp(this.clock.now()));
    const first = prepare(stamp(this.clock.now()));
    const now = await this.clock.read();
    await this.listQueue(now);
    return again ? again(first, stamp(now)) : prepare(stamp(now));
  }

  /**
   * Lists the queue in the registry of queues (SPEC.md 2.3), once per queue object, so that tools
   * find it without KEYS or SCAN. Informative: a refused write (an ACL user without access) is ignored.
   */
  private listQueue(now: bigint): Promise<void> {
    this.listed ??= this.link.run((redis) => redis.zadd(SHARED_KEYS.queues, String(now / 1000n), this.name))
      .then(() => undefined, (error: unknown) => {
        if (!(error instanceof ReplyError)) this.listed = undefined; // a lost connection: try again next time
      });
    return this.listed;
  }

  /** prepare() for each spec of enqueueMany; an InvalidArgumentsError names the task: tasks[<index>].<field>. */
  private prepareAll(list: readonly TaskSpec[], at: Stamp): Prepared[] {
    const tasks = new Array<Prepared>(list.length);
    for (let index = 0; index < list.length; index += 1) {
      const spec: unknown = list[index];
      tasks[index] = (spec !== null && typeof spec === 'object' ? this.like(spec as TaskSpec, at) : undefined) ??
        this.prepareSpec(list, index, at);
    }
    return tasks;
  }

  /**
   * What prepare() makes of a spec like the last one of `at` (the common case: a call of like
   * tasks): no options, the same function, valid args; else undefined, and prepare() takes it (and
   * names what is wrong). Its id is drawn when it is written (identify).
   */
  private like(spec: TaskSpec, at: Stamp): Prepared | undefined {
    const last = at.last;
    if (last?.options !== PLAIN.fields || spec.fn !== last.fn || !withoutOptions(spec)) return undefined;
    const args = validArgsJson(spec.args ?? {});
    if (args === undefined) return undefined;
    const task: Prepared = {
      id: '', idBytes: 0, key: '', parents: PLAIN.parents, placement: PLAIN.placement, fn: last.fn, args,
      options: last.options, relative: false, stamp: at,
    };
    try {
      this.checkHash(task);
    } catch {
      return undefined;
    }
    return task;
  }

  /** Draws the ids of tasks that have none yet (see like()). */
  private identify(tasks: readonly Prepared[]): void {
    let count = 0;
    tasks.forEach((task) => { if (task.id === '') count += 1; });
    if (count === 0) return;
    const ids = randomUUIDs(count);
    let next = 0;
    tasks.forEach((task) => {
      if (task.id !== '') return;
      const id = ids[next] ?? randomUUID();
      next += 1;
      task.id = id;
      task.idBytes = id.length;
      task.key = TASK_KEY_ENDS_WITH_ID ? this.taskPrefix + id : taskKey(this.name, id);
    });
  }

  private prepareSpec(list: readonly TaskSpec[], index: number, at: Stamp): Prepared {
    const spec: unknown = list[index];
    if (spec === null || typeof spec !== 'object') {
      throw new InvalidArgumentsError(`tasks[${index}]`, 'must be an object { fn, args?, ...options }');
    }
    try {
      if (withoutOptions(spec)) return this.prepare((spec as TaskSpec).fn, (spec as TaskSpec).args ?? {}, NO_OPTIONS, at);
      const { fn, args, ...options } = spec as TaskSpec;
      return this.prepare(fn, args ?? {}, options, at);
    } catch (error) {
      throw inTask(index, error);
    }
  }

  /**
   * The tasks prepareAll made at this machine's time, at the Redis time of `at`: the same tasks, but
   * for a due time counted from now (delay), prepared again.
   */
  private restamp(list: readonly TaskSpec[], tasks: Prepared[], at: Stamp): Prepared[] {
    tasks.forEach((task, index) => {
      if (task.relative) {
        tasks[index] = this.prepareSpec(list, index, at);
        return;
      }
      task.stamp = at;
      try {
        this.checkHash(task);
      } catch (error) {
        throw inTask(index, error);
      }
    });
    return tasks;
  }

  /**
   * One task checked and made ready to write (its enqueue.lua call follows from it, see enqueue.ts);
   * `stamp.now` (microseconds on the Redis clock) is its pending-created.
   */
  private prepare(fn: unknown, args: unknown, options: unknown, stamp: Stamp): Prepared {
    const last = stamp.last?.fn;
    const name = last !== undefined && fn === last ? last : checkFunctionName(fn);
    const id: unknown = options !== null && typeof options === 'object' ? (options as EnqueueOptions).id : undefined;
    const taskId = id === undefined ? randomUUID() : checkId(id);
    if (taskId.startsWith(this.taskPrefix)) {
      throw new InvalidArgumentsError('id', `begins with ${JSON.stringify(this.taskPrefix)}, which reads as the full-key ` +
        'form of another id (SPEC.md 1.3, 2.2); pass the bare id');
    }
    const argsJson = serializeArgs(args);
    const plan = planOptions(options, taskId, this.name, this.taskPrefix, stamp.now);
    const task: Prepared = {
      id: taskId, idBytes: id === undefined ? taskId.length : Buffer.byteLength(taskId),
      key: TASK_KEY_ENDS_WITH_ID ? this.taskPrefix + taskId : taskKey(this.name, taskId),
      parents: plan.parents, placement: plan.placement, fn: name, args: argsJson, options: plan.fields, relative: plan.relative, stamp,
    };
    this.checkHash(task);
    return task;
  }

  /** Checks the hash enqueue.lua will write for the task against task.schema.json, once per distinct hash of its Stamp. */
  private checkHash(task: Prepared): void {
    const { stamp: at, fn, args, options } = task;
    const last = at.last;
    if (last?.fn === fn && last.args === args && last.options === options) return;
    // The hash is function, state, args, pending-created, the options, the trace: with the Stamp's
    // time and trace, the function (length-prefixed), the args (JSON text: no NUL) and the options name it.
    const hash = `${fn.length}:${fn}${args}${options.length > 0 ? `\u0000${JSON.stringify(options)}` : ''}`;
    if (!at.checked.has(hash)) {
      checkTaskHash(hashOf(task));
      if (at.checked.size >= CHECKED_HASHES) at.checked.clear();
      at.checked.add(hash);
    }
    at.last = { fn, args, options };
  }

  /**
   * Runs enqueue.lua for each task, in order, and returns the replies (a reply error is thrown). On
   * one server the calls are written straight to the connection (enqueue.ts); on a Cluster they go
   * through an ioredis pipeline.
   */
  private async write(redis: Redis, tasks: readonly Prepared[]): Promise<Reply[]> {
    this.identify(tasks);
    let replies: Reply[];
    if (writable(redis)) {
      replies = await writeCalls(redis, this.keys, tasks);
    } else {
      const pipeline = redis.pipeline();
      for (const task of tasks) void runEnqueue(pipeline, this.keys, task);
      replies = ((await pipeline.exec()) ?? []).map(([error, reply]) => error ?? reply);
    }
    const error = replies.find((reply) => reply instanceof Error);
    if (error) throw error;
    return replies;
  }

  /**
   * The error for an enqueue.lua reply other than 1. For -2 and -3 the parents are read once more
   * to name the one at fault (null when it changed in between).
   */
  private async refusal(task: Prepared, reply: number): Promise<Error> {
    if (reply === 0) return new TaskExistsError([task.id]);
    if (reply !== -2 && reply !== -3) return new Error(`enqueue.lua answered ${String(reply)}`);
    const reason = reply === -2 ? 'parent-failed' : 'parent-missing';
    let parentId: string | null = null;
    try {
      const replies = await this.link.run(async (redis) => {
        const pipeline = redis.pipeline();
        for (const parent of task.parents) pipeline.type(taskKey(this.name, parent)).hmget(taskKey(this.name, parent), 'state', 'result');
        return (await pipeline.exec()) ?? [];
      });
      parentId = task.parents.find((_, i) => {
        const [, type] = replies[2 * i] ?? [];
        const [, values] = replies[2 * i + 1] ?? [];
        if (reply === -3) return type !== 'hash';
        const [state, result] = (values ?? []) as (string | null)[];
        return type === 'hash' && state === 'finished' && result !== 'successful';
      }) ?? null;
    } catch {
      // the refusal stands; only the name of the parent at fault is missing
    }
    return new DependencyError(task.id, reason, parentId);
  }

  /** The next progress report of a task: a subscription of its own to <queue>:progress, for this wait. */
  private async waitProgress(id: string, key: string, timeout: number): Promise<Progress> {
    this.assertOpen();
    const link = new Link({ ...this.options, connectionName: 'dothis-progress' });
    let timer: NodeJS.Timeout | undefined;
    let wake: (() => void) | undefined;
    link.redis.on('message', (_channel: string, message: string) => { if (message === key) wake?.(); });
    try {
      const expired = new Promise<never>((_, reject) => {
        timer = setTimeout(() => { reject(new WaitTimeoutError(id, timeout, 'reported no progress')); }, timeout);
      });
      await Promise.race([link.run((redis) => redis.subscribe(progressChannel(this.name))), expired]);
      for (;;) {
        await Promise.race([new Promise<void>((resolve) => { wake = resolve; }), expired]);
        const report = parseProgress((await this.readFields(key, ['progress']))?.[0]);
        if (report !== null) return report;
      }
    } finally {
      clearTimeout(timer);
      link.redis.disconnect();
    }
  }

  /** Runs cancel.lua for the task (SPEC.md 5.14). */
  private async cancel(id: string, key: string): Promise<CancelResult> {
    this.assertOpen();
    const { keys, argv } = cancelCall(this.name, id, key, await this.clock.read());
    const reply = await this.link.run((redis) => scriptVia(redis, CANCEL_COMMAND)(...keys, ...argv));
    if (reply === -1) throw new TaskNotFoundError(id, this.name);
    const result = CANCEL_RESULTS[reply];
    if (result === undefined) throw new Error(`cancel.lua answered ${String(reply)}`);
    return result;
  }

  private async deleteTask(id: string, key: string): Promise<DeleteResult> {
    this.assertOpen();
    const { keys, argv } = deleteCall(this.name, id, key);
    const reply = await this.link.run((redis) => scriptVia(redis, DELETE_COMMAND)(...keys, ...argv));
    if (reply === -1) throw new TaskNotFoundError(id, this.name);
    const result = DELETE_RESULTS[reply];
    if (result === undefined) throw new Error(`delete.lua answered ${String(reply)}`);
    return result;
  }

  private async readFields(key: string, fields: readonly string[]): Promise<(string | null)[] | null> {
    const [type, values] = await this.readTyped(key, (pipeline) => pipeline.hmget(key, ...fields));
    return type === 'hash' ? values as (string | null)[] : null;
  }

  private async readHash(key: string): Promise<Record<string, string> | null> {
    const [type, fields] = await this.readTyped(key, (pipeline) => pipeline.hgetall(key));
    return type === 'hash' ? fields as Record<string, string> : null;
  }

  /** TYPE key plus one read, pipelined; the read's error (WRONGTYPE) counts only for a hash. */
  private async readTyped(key: string, read: (pipeline: ChainableCommander) => void): Promise<[unknown, unknown]> {
    this.assertOpen();
    return this.link.run(async (redis) => {
      const pipeline = redis.pipeline().type(key);
      read(pipeline);
      const [[typeError, type], [readError, value]] = (await pipeline.exec()) as [[Error | null, unknown], [Error | null, unknown]];
      if (typeError) throw typeError;
      if (type === 'hash' && readError) throw readError;
      return [type, value];
    });
  }

  private wait(id: string, key: string, options: WaitOptions, fresh = false): Promise<unknown> {
    this.assertOpen();
    if (!this.waits) {
      const link = new Link({ ...this.options, connectionName: 'dothis-results' });
      const results = new ResultWaits(link, resultsChannel(this.name), (k, f) => this.readFields(k, f), {}, outcomesChannel(this.name));
      this.waits = { link, results };
    }
    return this.waits.results.wait(id, key, options, fresh);
  }
}
