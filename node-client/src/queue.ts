/** The producer: a Queue enqueues tasks and hands out Task handles to read and wait on them. */
import { randomUUID } from 'node:crypto';

import type { ChainableCommander, Redis } from 'ioredis';

import { DEFAULT_URL, Link } from './connection.js';
import { InvalidArgumentsError, QueueClosedError, TaskExistsError } from './errors.js';
import { SCRIPTS } from './generated/scripts.js';
import { pendingKey, resultsChannel, taskKey } from './protocol.js';
import { Task, type TaskSource, type WaitOptions } from './task.js';
import { isoNow } from './time.js';
import { checkFunctionName, checkId, checkQueueName, checkTaskHash, serializeArgs, type Args } from './validate.js';
import { ResultWaits } from './waits.js';

export interface QueueOptions {
  /** Redis URL. Default: $DOTHIS_REDIS_URL, else redis://127.0.0.1:6379/0. */
  url?: string;
  /** How long a call waits for a (re)connection before failing, in ms. Default 3000. */
  connectTimeout?: number;
}

export interface EnqueueOptions {
  /** A custom task id (1..256 bytes of UTF-8, no whitespace or control characters). Default: a random UUID. */
  id?: string;
}

/** One task for enqueueMany. */
export interface TaskSpec {
  fn: string;
  args?: Args;
  id?: string;
}

interface Prepared {
  id: string;
  key: string;
  argv: string[];
}

const ENQUEUE_COMMAND = 'dothisEnqueue';
/** enqueueMany pipelines BATCH scripts at a time and keeps up to WINDOW pipelines in flight. */
const BATCH = 1000;
const WINDOW = 8;

/** Maps with at most `limit` calls in flight; results keep the order of `items`. */
async function mapLimited<T, R>(items: readonly T[], limit: number, map: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length) {
      const index = next;
      next += 1;
      results[index] = await map(items[index] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return results;
}

type EnqueueCommand = (taskKey: string, pendingKey: string, ...argv: string[]) => Promise<number>;

function enqueueVia(target: Redis | ChainableCommander): EnqueueCommand {
  const command = (target as unknown as Record<string, EnqueueCommand | undefined>)[ENQUEUE_COMMAND];
  if (!command) throw new Error('enqueue script is not defined on this connection');
  return command.bind(target);
}

export class Queue {
  /** The queue name: every key of the queue starts with "<name>:". */
  readonly name: string;
  /** The Redis URL, password masked. */
  readonly url: string;
  private readonly link: Link;
  private readonly options: Required<QueueOptions>;
  private readonly source: TaskSource;
  private waits: { link: Link; results: ResultWaits } | undefined;
  private closed = false;
  private readonly taskPrefix: string;

  constructor(name: string, options: QueueOptions = {}) {
    this.name = checkQueueName(name);
    const connectTimeout = options.connectTimeout ?? 3000;
    if (!Number.isFinite(connectTimeout) || connectTimeout <= 0) {
      throw new InvalidArgumentsError('connectTimeout', `must be a positive number of milliseconds, got ${String(connectTimeout)}`);
    }
    const url = options.url ?? process.env.DOTHIS_REDIS_URL ?? DEFAULT_URL;
    this.options = { url, connectTimeout };
    this.link = new Link({ url, connectTimeout, connectionName: 'dothis-producer' });
    this.link.redis.defineCommand(ENQUEUE_COMMAND, { numberOfKeys: 2, lua: SCRIPTS.enqueue });
    this.url = this.link.url;
    this.taskPrefix = taskKey(this.name, '');
    this.source = {
      name: this.name,
      readFields: (key, fields) => this.readFields(key, fields),
      readHash: (key) => this.readHash(key),
      wait: (id, key, waitOptions) => this.wait(id, key, waitOptions),
    };
  }

  /**
   * Creates a task that runs `fn(**args)` on a worker and returns its handle. Rejects with
   * TaskExistsError when `options.id` is taken (nothing is written), InvalidArgumentsError naming
   * the field, ConnectionFailedError, or QueueClosedError.
   */
  async enqueue(fn: string, args: Args = {}, options: EnqueueOptions = {}): Promise<Task> {
    this.assertOpen();
    const task = this.prepare(fn, args, options.id);
    const created = await this.link.run((redis) =>
      enqueueVia(redis)(task.key, pendingKey(this.name), ...task.argv));
    if (created !== 1) throw new TaskExistsError([task.id]);
    return new Task(this.source, task.id, task.key);
  }

  /**
   * Enqueues many tasks, pipelined. Every task is validated before anything is written. Ids that
   * already exist are left untouched and reported in one TaskExistsError after the others were
   * enqueued (its enqueuedIds lists them).
   */
  async enqueueMany(specs: Iterable<TaskSpec>): Promise<Task[]> {
    this.assertOpen();
    const prepared = [...specs].map((spec, index) => {
      if ((spec as unknown) === null || typeof spec !== 'object') {
        throw new InvalidArgumentsError(`tasks[${index}]`, 'must be an object { fn, args?, id? }');
      }
      try {
        return this.prepare(spec.fn, spec.args ?? {}, spec.id);
      } catch (error) {
        if (error instanceof InvalidArgumentsError) throw new InvalidArgumentsError(`tasks[${index}].${error.field}`, error.problem);
        throw error;
      }
    });
    const chunks: Prepared[][] = [];
    for (let start = 0; start < prepared.length; start += BATCH) chunks.push(prepared.slice(start, start + BATCH));
    const replies = (await mapLimited(chunks, WINDOW, (chunk) => this.link.run(async (redis) => {
      const pipeline = redis.pipeline();
      const enqueue = enqueueVia(pipeline);
      for (const task of chunk) void enqueue(task.key, pendingKey(this.name), ...task.argv);
      const results = (await pipeline.exec()) ?? [];
      return results.map(([error, reply]) => {
        if (error) throw error;
        return reply;
      });
    }))).flat();
    const existing = prepared.filter((_, i) => replies[i] !== 1).map((task) => task.id);
    if (existing.length > 0) {
      const enqueued = prepared.filter((_, i) => replies[i] === 1).map((task) => task.id);
      throw new TaskExistsError(existing as [string, ...string[]], enqueued);
    }
    return prepared.map((task) => new Task(this.source, task.id, task.key));
  }

  /** A handle on the task with this id, without reading Redis (see getTask). */
  task(id: string): Task {
    return new Task(this.source, checkId(id), taskKey(this.name, id));
  }

  /** The task with this id, or null when its hash does not exist. */
  async getTask(id: string): Promise<Task | null> {
    this.assertOpen();
    const task = this.task(id);
    const type = await this.link.run((redis) => redis.type(task.key));
    return type === 'hash' ? task : null;
  }

  /** How many entries wait in <queue>:pending. */
  async length(): Promise<number> {
    this.assertOpen();
    return this.link.run((redis) => redis.llen(pendingKey(this.name)));
  }

  /** Rejects pending waits with QueueClosedError and closes both connections. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const waits = this.waits;
    waits?.results.rejectAll(new QueueClosedError(this.name));
    await Promise.all([this.link.close(), waits?.link.close()]);
  }

  private assertOpen(): void {
    if (this.closed) throw new QueueClosedError(this.name);
  }

  private prepare(fn: unknown, args: unknown, id: unknown): Prepared {
    const name = checkFunctionName(fn);
    const taskId = id === undefined ? randomUUID() : checkId(id);
    if (taskId.startsWith(this.taskPrefix)) {
      throw new InvalidArgumentsError('id', `begins with ${JSON.stringify(this.taskPrefix)}, which reads as the full-key ` +
        'form of another id (SPEC.md 1.3, 2.2); pass the bare id');
    }
    const hash = { function: name, state: 'pending', args: serializeArgs(args), 'pending-created': isoNow() };
    checkTaskHash(hash);
    return { id: taskId, key: taskKey(this.name, taskId), argv: [taskId, ...Object.entries(hash).flat()] };
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

  private wait(id: string, key: string, options: WaitOptions): Promise<unknown> {
    this.assertOpen();
    if (!this.waits) {
      const link = new Link({ ...this.options, connectionName: 'dothis-results' });
      this.waits = { link, results: new ResultWaits(link, resultsChannel(this.name), (k, f) => this.readFields(k, f)) };
    }
    return this.waits.results.wait(id, key, options);
  }
}
