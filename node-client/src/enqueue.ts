/**
 * The enqueue.lua call of a task (SPEC.md 5.1): its KEYS and ARGV, for a single enqueue, and the
 * same call as RESP bytes, which enqueueMany writes straight to the connection.
 *
 * enqueueMany is bound by the cost of each command on the client. Through ioredis a script call
 * turns every argument into RESP one by one and makes a Command and several promises. Here the
 * bytes every task of a call shares (the queue's keys, the timestamp, the trace, the field names,
 * the function and args when they repeat) are made once per call, a plain task's call is those
 * bytes around its id, and a batch of calls is one ioredis Command (EnqueueBatch) and one write.
 * The commands on the wire are the same EVALSHA (EVAL the first time on a connection) with the
 * same KEYS and ARGV as through ioredis.
 *
 * EnqueueBatch leans on how ioredis 6.0 queues and answers a Command (one queue entry per send,
 * replies in order, the stream an ioredis Pipeline writes to): package.json therefore takes
 * ioredis ~6.0 (patch releases only), and test/enqueue.test.mjs holds the path to those rules
 * (mixed batches, a script cache flushed meanwhile, a connection killed mid-call).
 */
import { createHash, randomFillSync } from 'node:crypto';

import { Command, type Redis } from 'ioredis';

import { SCRIPTS } from './generated/scripts.js';
import type { Placement } from './options.js';
import { dependentsKey, TASK_KEY_ENDS_WITH_ID, taskKey } from './protocol.js';
import { formatMicros } from './time.js';
import { traceFields } from './tracing.js';

/** What the tasks of one enqueue call share: its time on the Redis clock and the trace it runs in. */
export interface Stamp {
  /** Microseconds since the epoch on the Redis clock: the tasks' pending-created. */
  now: bigint;
  /** `now` as the protocol writes it. */
  created: string;
  /** traceparent and tracestate of the span the call runs in (SPEC.md 3.1); empty outside a trace. */
  trace: [string, string][];
  /**
   * Task hashes of this call already checked against task.schema.json: every task of a call has the
   * same pending-created and trace, so hashes with the same function, args and options are the same
   * hash, checked once.
   */
  checked: Set<string>;
  /** The function, args and options of the hash checked last (the common case: a call of like tasks). */
  last?: { fn: string; args: string; options: Prepared['options'] };
  /** The RESP text of the parts every task of the call shares, once the call is written. */
  wire?: Shared;
}

/** The Stamp of an enqueue call at `now` (microseconds on the Redis clock), in the trace the caller runs in. */
export function stamp(now: bigint): Stamp {
  return { now, created: formatMicros(now), trace: traceFields(), checked: new Set() };
}

/** The keys of a queue that every enqueue.lua call names. */
export interface QueueKeys {
  name: string;
  /** <queue>:task:, the start of every task key (the id follows). */
  taskPrefix: string;
  pending: string;
  scheduled: string;
  waiting: string;
}

/** One task, checked, ready to be written: enqueue.lua's KEYS and ARGV follow from it. */
export interface Prepared {
  /** The task id; '' until drawn, for a task whose id is drawn when it is written. */
  id: string;
  /** The id's length in bytes of UTF-8. */
  idBytes: number;
  /** KEYS[1], the task hash. */
  key: string;
  /** Parent ids, deduplicated, in the order given. */
  parents: readonly string[];
  placement: Placement;
  /** The function name, the first field of the hash. */
  fn: string;
  /** The args as JSON text. */
  args: string;
  /** The option fields of the hash ([field, value] pairs), after function, state, args and pending-created. */
  options: readonly (readonly [string, string])[];
  /** Whether the task's due time counts from the Stamp's now (delay). */
  relative: boolean;
  stamp: Stamp;
}

/** The fields of the hash enqueue.lua writes, in order, as [field, value] pairs. */
export function hashFields(task: Prepared): (readonly [string, string])[] {
  return [['function', task.fn], ['state', 'pending'], ['args', task.args], ['pending-created', task.stamp.created],
    ...task.options, ...task.stamp.trace];
}

/** The hash enqueue.lua writes (HSET of hashFields: a later field overwrites an earlier one of the same name). */
export function hashOf(task: Prepared): Record<string, string> {
  const hash: Record<string, string> = { function: task.fn, state: 'pending', args: task.args, 'pending-created': task.stamp.created };
  for (const [field, value] of task.options) hash[field] = value;
  for (const [field, value] of task.stamp.trace) hash[field] = value;
  return hash;
}

/** KEYS and ARGV of enqueue.lua for one task. */
export function enqueueCall(queue: QueueKeys, task: Prepared): { keys: string[]; argv: string[] } {
  const keys = [task.key, queue.pending, queue.scheduled];
  for (const parent of task.parents) keys.push(taskKey(queue.name, parent), dependentsKey(queue.name, parent));
  // A task that waits joins the index of waiting tasks (SPEC.md 5.1, 5.13).
  if (task.parents.length > 0) keys.push(queue.waiting);
  return { keys, argv: [task.id, task.placement, '1', String(task.parents.length), ...task.parents, ...hashFields(task).flat()] };
}

// -- Ids -----------------------------------------------------------------------------------------

/** The two hex digits of each byte value, as character codes. */
const HEX = new TextEncoder().encode(Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, '0')).join(''));

/**
 * `count` random UUIDs (version 4, as crypto.randomUUID draws them: 122 random bits from the
 * CSPRNG), drawn together: one fill of random bytes, their text written into one buffer, one flat
 * string per id (randomUUID builds each of some twenty strings).
 */
export function randomUUIDs(count: number): string[] {
  const bytes = randomFillSync(Buffer.allocUnsafe(16 * count));
  const text = Buffer.allocUnsafe(36 * count);
  const ids = new Array<string>(count);
  for (let n = 0; n < count; n += 1) {
    const from = 16 * n;
    const start = 36 * n;
    let at = start;
    for (let i = 0; i < 16; i += 1) {
      let byte = bytes[from + i] ?? 0;
      if (i === 6) byte = (byte & 0x0f) | 0x40; // version 4
      else if (i === 8) byte = (byte & 0x3f) | 0x80; // variant 10
      text[at] = HEX[2 * byte] ?? 0;
      text[at + 1] = HEX[2 * byte + 1] ?? 0;
      at += 2;
      if (i === 3 || i === 5 || i === 7 || i === 9) {
        text[at] = 0x2d; // -
        at += 1;
      }
    }
    ids[n] = text.toString('latin1', start, at);
  }
  return ids;
}

// -- RESP ----------------------------------------------------------------------------------------

/** A RESP bulk string. */
const bulk = (value: string): string => `$${Buffer.byteLength(value)}\r\n${value}\r\n`;

const bulks = (values: readonly string[]): string => values.map(bulk).join('');

const LUA = SCRIPTS.enqueue;
const SHA = createHash('sha1').update(LUA).digest('hex');
/** After the element count: the command and its first argument, the script's SHA1 or its text. */
const EVALSHA_HEAD = `\r\n$7\r\nevalsha\r\n${bulk(SHA)}`;
const EVAL_HEAD = `\r\n$4\r\neval\r\n${bulk(LUA)}`;
/** Elements of a call besides KEYS and ARGV: the command, the script, the number of keys. */
const OVERHEAD = 3;

/** The RESP text shared by the calls of one Stamp, for one queue. */
interface Shared {
  queue: string;
  /** The task keys' prefix, <queue>:task:, and its length in bytes. */
  prefix: string;
  prefixBytes: number;
  /** The start of a call without parents and options, up to its task key: count, EVALSHA, SHA1, numkeys. */
  plainHead: string;
  /** Its element count. */
  plainCount: number;
  /** pending and scheduled keys. */
  queueKeys: string;
  /** 'back', '1' (replace a finished hash), '0' parents. */
  plainPlacement: string;
  /** 'function'. */
  fnField: string;
  /** 'state', 'pending', 'args'. */
  middle: string;
  /** 'pending-created' and its value. */
  created: string;
  /** The trace fields. */
  trace: string;
  /** Elements of ARGV that every call has: 4 before the parents, 8 base fields, the trace fields. */
  argvFixed: number;
  /** The function name last encoded, and its text. */
  lastFn: string;
  lastFnText: string;
  /** For encodeCalls: the bytes around the id in a plain call, for ids of `idBytes` bytes. */
  around?: { idBytes: number; beforeKey: Buffer; beforeId: Buffer };
  /** For encodeCalls: the bytes after the id in a plain call, for the function and args last written. */
  after?: { fn: string; args: string; bytes: Buffer };
}

function shared(queue: QueueKeys, stamp: Stamp): Shared {
  if (stamp.wire?.queue === queue.name) return stamp.wire;
  const argvFixed = 4 + 8 + 2 * stamp.trace.length;
  const plainCount = OVERHEAD + 3 + argvFixed;
  stamp.wire = {
    queue: queue.name,
    prefix: queue.taskPrefix,
    prefixBytes: Buffer.byteLength(queue.taskPrefix),
    plainHead: `*${plainCount}${EVALSHA_HEAD}${bulk('3')}`,
    plainCount,
    queueKeys: bulk(queue.pending) + bulk(queue.scheduled),
    plainPlacement: bulk('back') + bulk('1') + bulk('0'),
    fnField: bulk('function'),
    middle: bulk('state') + bulk('pending') + bulk('args'),
    created: bulk('pending-created') + bulk(stamp.created),
    trace: bulks(stamp.trace.flat()),
    argvFixed,
    lastFn: '',
    lastFnText: bulk(''),
  };
  return stamp.wire;
}

/** The hash's fields as RESP: function, state, args, pending-created, the options, the trace. */
function fieldsText(wire: Shared, task: Prepared): string {
  if (task.fn !== wire.lastFn) {
    wire.lastFn = task.fn;
    wire.lastFnText = bulk(task.fn);
  }
  const options = task.options.length === 0 ? '' : bulks(task.options.flat());
  return `${wire.fnField}${wire.lastFnText}${wire.middle}$${Buffer.byteLength(task.args)}\r\n${task.args}\r\n` +
    `${wire.created}${options}${wire.trace}`;
}

/**
 * enqueueCall(queue, task) as the RESP text of EVALSHA, or of EVAL (`script`: the script's text
 * instead of its SHA1): the same KEYS and ARGV, byte for byte.
 */
export function encodeCall(queue: QueueKeys, task: Prepared, script = false): string {
  const wire = shared(queue, task.stamp);
  const { parents, options } = task;
  const fields = fieldsText(wire, task);
  if (parents.length === 0 && task.placement === 'back' && !script && TASK_KEY_ENDS_WITH_ID) {
    const head = options.length === 0 ? wire.plainHead : `*${wire.plainCount + 2 * options.length}${EVALSHA_HEAD}${bulk('3')}`;
    return `${head}$${wire.prefixBytes + task.idBytes}\r\n${task.key}\r\n${wire.queueKeys}` +
      `$${task.idBytes}\r\n${task.id}\r\n${wire.plainPlacement}${fields}`;
  }
  const keys = [task.key, queue.pending, queue.scheduled];
  for (const parent of parents) keys.push(taskKey(queue.name, parent), dependentsKey(queue.name, parent));
  // A task that waits joins the index of waiting tasks (SPEC.md 5.1, 5.13).
  if (parents.length > 0) keys.push(queue.waiting);
  const count = OVERHEAD + keys.length + wire.argvFixed + parents.length + 2 * options.length;
  const argv = bulks([task.id, task.placement, '1', String(parents.length), ...parents]);
  return `*${count}${script ? EVAL_HEAD : EVALSHA_HEAD}${bulk(String(keys.length))}${bulks(keys)}${argv}${fields}`;
}

/**
 * The calls of the tasks, in order, as one buffer: encodeCall's bytes, the first call an EVAL when
 * `script`. A plain call (an ASCII id, no options, no parents, at the back) is three runs of bytes
 * every such call of the Stamp shares, around its id written twice (in KEYS[1] and ARGV[1]).
 */
export function encodeCalls(queue: QueueKeys, tasks: readonly Prepared[], script = false): Buffer {
  const parts = new Array<Buffer | string>(tasks.length);
  let size = 0;
  tasks.forEach((task, i) => {
    const after = i === 0 && script ? undefined : plainAfter(queue, task);
    if (after) {
      const around = plainAround(shared(queue, task.stamp), task.idBytes);
      parts[i] = after;
      size += around.beforeKey.length + around.beforeId.length + 2 * task.idBytes + after.length;
    } else {
      const text = encodeCall(queue, task, i === 0 && script);
      parts[i] = text;
      size += Buffer.byteLength(text);
    }
  });
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  tasks.forEach(({ id, idBytes, stamp }, i) => {
    const part = parts[i] ?? '';
    if (typeof part === 'string') {
      at += out.write(part, at);
      return;
    }
    const { beforeKey, beforeId } = plainAround(shared(queue, stamp), idBytes);
    out.set(beforeKey, at);
    at += beforeKey.length;
    at += out.write(id, at, 'latin1');
    out.set(beforeId, at);
    at += beforeId.length;
    at += out.write(id, at, 'latin1');
    out.set(part, at);
    at += part.length;
  });
  return out;
}

/** The bytes of a plain call after its id (see encodeCalls), or undefined when the task's call is not plain. */
function plainAfter(queue: QueueKeys, task: Prepared): Buffer | undefined {
  if (task.parents.length > 0 || task.placement !== 'back' || task.options.length > 0 || task.idBytes !== task.id.length ||
    !TASK_KEY_ENDS_WITH_ID) return undefined;
  const wire = shared(queue, task.stamp);
  const last = wire.after;
  if (last?.fn === task.fn && last.args === task.args) return last.bytes;
  const bytes = Buffer.from(`\r\n${wire.plainPlacement}${fieldsText(wire, task)}`);
  wire.after = { fn: task.fn, args: task.args, bytes };
  return bytes;
}

/** The bytes of a plain call before its id in KEYS[1], and between KEYS[1] and ARGV[1] (see encodeCalls). */
function plainAround(wire: Shared, idBytes: number): { beforeKey: Buffer; beforeId: Buffer } {
  if (wire.around?.idBytes !== idBytes) {
    wire.around = {
      idBytes,
      beforeKey: Buffer.from(`${wire.plainHead}$${wire.prefixBytes + idBytes}\r\n${wire.prefix}`),
      beforeId: Buffer.from(`\r\n${wire.queueKeys}$${idBytes}\r\n`),
    };
  }
  return wire.around;
}

// -- Writing -------------------------------------------------------------------------------------

/** ioredis's PipelineWriteableStream (not exported by name): a stream an ioredis Pipeline hands its sends to. */
interface PipelineStream {
  isPipeline: true;
  write: (data: string | Buffer) => unknown;
  destination: { redis: { stream: Redis['stream'] } };
}

/** What an enqueue.lua call answered: its integer reply, or the error Redis or the connection gave. */
export type Reply = unknown;

/** Connections on which the script was sent in full (EVAL): later calls send its SHA1. */
const loaded = new WeakSet<object>();

const NOSCRIPT = /\bNOSCRIPT\b/;
const PING = '*1\r\n$4\r\nPING\r\n';
/** ioredis's words for a command of a pipeline it does not send again after a reconnection. */
const ABORTED = 'Command aborted due to connection close';
const ignore = (): void => undefined;

/**
 * The enqueue.lua calls of a batch of tasks as one ioredis Command, sent once per task: ioredis
 * queues an entry per send and hands each reply (or error) back in order, so the k-th answer is
 * the k-th task's, and a batch costs one Command and one promise instead of one per task. The
 * sends go to a pipeline stream (as an ioredis Pipeline's do) that keeps them, and the calls of
 * the batch are then written at once (encodeCalls). Calls unanswered when the connection is lost
 * fail (ConnectionFailedError, through Link): they are not sent again.
 */
class EnqueueBatch extends Command {
  readonly replies: Reply[];
  readonly done: Promise<Reply[]>;
  private readonly count: number;
  /** While the batch's entries are queued (writeOnce): the sends write nothing, the batch is written after. */
  collecting = true;
  /** The connection the batch was written to, and how many of its calls are answered. */
  socket: object | undefined;
  answered = 0;
  /** Whether the connection was lost with calls of the batch unanswered: they fail (see toWritable). */
  private aborted = false;
  private finish: (replies: Reply[]) => void = ignore;
  private readonly settle: (value: unknown) => void;

  /** The tasks' calls are written by writeOnce; here they name a refused call (refuse). `script`: the first is an EVAL. */
  constructor(private readonly queue: QueueKeys, private readonly tasks: readonly Prepared[], private readonly script: boolean) {
    super('evalsha', []);
    this.count = tasks.length;
    this.replies = new Array<Reply>(tasks.length);
    this.done = new Promise((resolve) => { this.finish = resolve; });
    this.settle = this.resolve;
    this.resolve = answer;
    this.reject = refuse;
  }

  override toWritable(): string {
    if (this.collecting) return '';
    // ioredis sends again, on a new connection, the entries the lost one did not answer. Their calls
    // may have run (a reply can be lost with the connection): the calls fail instead, each entry
    // written as a PING (any command would do: one reply each) and answered as aborted.
    this.aborted = true;
    return PING;
  }

  /** The next task's reply. */
  answer(reply: unknown): void {
    this.replies[this.answered] = this.aborted ? new Error(ABORTED) : reply;
    this.answered += 1;
    if (this.answered === this.count) {
      this.finish(this.replies);
      this.settle(null); // the Command's own promise, which nothing awaits (ioredis traces it)
    }
  }

  /** The next task's error: a refusal of Redis, or the connection lost. */
  refuse(error: Error): void {
    if (this.socket && NOSCRIPT.test(error.message)) loaded.delete(this.socket);
    const task = this.tasks[this.answered];
    if (task && !this.aborted) {
      // ioredis names the command of a reply error (error.command), which explains an ACL refusal
      // (explainNoPerm): the call as an ioredis script command has it
      const { keys, argv } = enqueueCall(this.queue, task);
      const evaluated = this.script && this.answered === 0;
      const args = [evaluated ? LUA : SHA, String(keys.length), ...keys, ...argv];
      Object.assign(error, { command: { name: evaluated ? 'eval' : 'evalsha', args } });
    }
    this.answer(error);
  }
}

// ioredis calls command.resolve(reply) and command.reject(error) as methods.
/* eslint-disable @typescript-eslint/unbound-method */
const { answer, refuse } = EnqueueBatch.prototype;
/* eslint-enable @typescript-eslint/unbound-method */

/**
 * Whether calls can be written on this client with EnqueueBatch: one server (not a Cluster), no
 * per-command timeout (it would time the batch as one command).
 */
export function writable(redis: Redis): boolean {
  return !redis.isCluster && redis.options.commandTimeout === undefined;
}

/**
 * Runs enqueue.lua for the tasks on one connection, in order, their calls written in one write,
 * and resolves with the replies in the same order: an integer, or an Error (a refused command, a
 * lost connection). Calls refused with NOSCRIPT (the script cache was flushed: none of them ran)
 * are written again once the others are answered, the first as EVAL, until none is refused (each
 * round runs one at least: the EVAL).
 */
export async function writeCalls(redis: Redis, queue: QueueKeys, tasks: readonly Prepared[]): Promise<Reply[]> {
  const replies = await writeOnce(redis, queue, tasks);
  let refused = tasks.length + 1;
  for (;;) {
    const again: number[] = [];
    replies.forEach((reply, i) => { if (isNoScript(reply)) again.push(i); });
    if (again.length === 0 || again.length >= refused) return replies;
    refused = again.length;
    const retried = await writeOnce(redis, queue, tasks.filter((_, i) => isNoScript(replies[i])), true);
    again.forEach((i, n) => { replies[i] = retried[n]; });
  }
}

const isNoScript = (reply: Reply): boolean => reply instanceof Error && NOSCRIPT.test(reply.message);

/** Writes the calls as one batch, the first an EVAL when the connection has not loaded the script (or `script`). */
function writeOnce(redis: Redis, queue: QueueKeys, tasks: readonly Prepared[], script = false): Promise<Reply[]> {
  if (tasks.length === 0) return Promise.resolve([]);
  const socket = redis.stream;
  const load = script || !loaded.has(socket);
  const batch = new EnqueueBatch(queue, tasks, load);
  const stream: PipelineStream = {
    isPipeline: true,
    destination: { redis },
    // after the batch is written, a send is ioredis's again on a new connection: written at once
    write: (data) => (batch.collecting ? true : redis.stream.write(data)),
  };
  tasks.forEach(() => { void redis.sendCommand(batch, stream); });
  batch.collecting = false;
  // A client that is not ready refuses each send at once (no offline queue): nothing to write then.
  if (batch.answered === 0) {
    loaded.add(socket);
    batch.socket = socket;
    socket.write(encodeCalls(queue, tasks, load));
  }
  return batch.done;
}
