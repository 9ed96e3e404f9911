/**
 * Enqueue options (SPEC.md 5.1 and 3.1): checked one by one before Redis is contacted, each error
 * naming the option, then turned into the hash fields, the placement and the parents that
 * lua/enqueue.lua takes.
 */
import { InvalidArgumentsError } from './errors.js';
import { DEFAULTS } from './protocol.js';
import { formatMicros } from './time.js';
import { LONE_SURROGATE, checkFunctionName, checkId, describe } from './validate.js';

/** A parent for `dependsOn`: a task id, or a Task handle of the same queue. */
export type TaskRef = string | { readonly id: string; readonly queue: string };

export interface EnqueueOptions {
  /** A custom task id (1..256 bytes of UTF-8, no whitespace or control characters). Default: a random UUID. */
  id?: string;
  /** Total tries allowed, the first included (an integer >= 1). Default 1: a failed try is final. */
  attempts?: number;
  /** Seconds a try may run before the worker stops it (> 0, fractions allowed). Default: the worker's. */
  timeout?: number;
  /** Run no earlier than this many seconds from now (>= 0): the task waits in <queue>:scheduled. */
  delay?: number;
  /** Run no earlier than this moment: the task waits in <queue>:scheduled. Not together with delay. */
  at?: Date;
  /** Put the task at the consuming end of <queue>:pending: it runs next. */
  atFront?: boolean;
  /** Tasks of this queue that must succeed first; the task waits for them (state waiting). */
  dependsOn?: TaskRef | readonly TaskRef[];
  /** Seconds the task may wait to start (an integer >= 1); later it ends as expired instead of running. */
  ttl?: number;
  /** Seconds the hash is kept after the task succeeds (an integer >= 1, or -1: kept). Default: the worker's. */
  resultTtl?: number;
  /** Seconds the hash is kept after any other outcome (an integer >= 1, or -1: kept). Default: the worker's. */
  failureTtl?: number;
  /** A function the worker enqueues when the task succeeds. */
  onSuccess?: string;
  /** A function the worker enqueues when the task ends without success. */
  onFailure?: string;
  /** Free text describing the task (informative only). */
  description?: string;
}

export const OPTION_NAMES: readonly (keyof EnqueueOptions)[] = [
  'id', 'attempts', 'timeout', 'delay', 'at', 'atFront', 'dependsOn', 'ttl', 'resultTtl', 'failureTtl',
  'onSuccess', 'onFailure', 'description',
];

/** Where enqueue.lua puts the task: 'back', 'front', or a due time (ms since the epoch, as text). */
export type Placement = 'back' | 'front' | `${number}`;

export interface Plan {
  /** Option fields of the hash, in order ([field, value] pairs), state/scheduled-for last. */
  fields: readonly (readonly [string, string])[];
  placement: Placement;
  /** Parent ids, deduplicated, in the order given. */
  parents: readonly string[];
  /** Whether the due time counts from now (delay): the plan holds for its `now` only. */
  relative: boolean;
}

/** The plan of a task without options (its fields and parents: these very arrays). */
export const PLAIN: Plan = Object.freeze({ fields: Object.freeze([]), placement: 'back', parents: Object.freeze([]), relative: false });

const MAX_DATE_MS = 253402300799999; // 9999-12-31T23:59:59.999Z: the last moment with a 4-digit year

const defined = (value: unknown): boolean => value !== undefined;

function positiveInteger(field: string, value: unknown): string {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new InvalidArgumentsError(field, `must be an integer >= 1, got ${describe(value)}`);
  }
  return String(value);
}

function keepSeconds(field: string, value: unknown): string {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || (value < 1 && value !== -1)) {
    throw new InvalidArgumentsError(field, `must be an integer number of seconds >= 1, or -1 (kept), got ${describe(value)}`);
  }
  return String(value);
}

/** A positive number of seconds as the protocol's decimal text: 30, 2.5 (at most 6 decimals). */
function secondsText(field: string, value: unknown): string {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new InvalidArgumentsError(field, `must be a positive number of seconds, got ${describe(value)}`);
  }
  const text = value.toFixed(6).replace(/\.?0+$/, '');
  if (!/^(0|[1-9][0-9]*)(\.[0-9]+)?$/.test(text) || /^0(\.0+)?$/.test(text)) {
    throw new InvalidArgumentsError(field, `must be between 0.000001 and 1e21 seconds, got ${String(value)}`);
  }
  return text;
}

function text(field: string, value: unknown): string {
  if (typeof value !== 'string') throw new InvalidArgumentsError(field, `must be a string, got ${describe(value)}`);
  if (LONE_SURROGATE.test(value)) throw new InvalidArgumentsError(field, 'holds a lone surrogate (not encodable as UTF-8)');
  const max = DEFAULTS['max-value-bytes'];
  if (Buffer.byteLength(value, 'utf8') > max) throw new InvalidArgumentsError(field, `is longer than ${max} bytes`);
  return value;
}

/** The due time in microseconds since the epoch, from delay or at. */
function dueMicros(options: EnqueueOptions, now: bigint): bigint | null {
  if (defined(options.delay)) {
    const delay: unknown = options.delay;
    if (typeof delay !== 'number' || !Number.isFinite(delay) || delay < 0) {
      throw new InvalidArgumentsError('delay', `must be a number of seconds >= 0, got ${describe(delay)}`);
    }
    const due = now + BigInt(Math.round(delay * 1e6));
    if (due / 1000n > BigInt(MAX_DATE_MS)) throw new InvalidArgumentsError('delay', `puts the due time past the year 9999 (${delay} s)`);
    return due;
  }
  if (defined(options.at)) {
    const at: unknown = options.at;
    if (!(at instanceof Date)) throw new InvalidArgumentsError('at', `must be a Date, got ${describe(at)}`);
    const ms = at.getTime();
    if (!Number.isFinite(ms)) throw new InvalidArgumentsError('at', 'is an invalid Date');
    if (ms < 0 || ms > MAX_DATE_MS) {
      throw new InvalidArgumentsError('at', `must lie between 1970-01-01 and 9999-12-31 UTC, got ${String(ms)} ms since the epoch`);
    }
    return BigInt(ms) * 1000n;
  }
  return null;
}

function parentsOf(value: unknown, queue: string, taskPrefix: string): string[] {
  const list: readonly unknown[] = Array.isArray(value) ? value : [value];
  const ids: string[] = [];
  list.forEach((item, index) => {
    const field = Array.isArray(value) ? `dependsOn[${index}]` : 'dependsOn';
    let id: string;
    if (typeof item === 'string') {
      id = checkId(item, field);
    } else if (item !== null && typeof item === 'object'
      && typeof (item as { id?: unknown }).id === 'string' && typeof (item as { queue?: unknown }).queue === 'string') {
      const task = item as { id: string; queue: string };
      if (task.queue !== queue) {
        throw new InvalidArgumentsError(field, `is a task of queue ${JSON.stringify(task.queue)}; parents must be tasks of ` +
          `this queue (${JSON.stringify(queue)})`);
      }
      id = checkId(task.id, field);
    } else {
      throw new InvalidArgumentsError(field, `must be a task id or a Task, got ${describe(item)}`);
    }
    if (id.startsWith(taskPrefix)) {
      throw new InvalidArgumentsError(field, `begins with ${JSON.stringify(taskPrefix)}; pass the bare id of the parent`);
    }
    if (!ids.includes(id)) ids.push(id);
  });
  return ids;
}

/**
 * Checks every option and returns the fields, placement and parents. `id` is the task's own id
 * (a task cannot depend on itself); `now` (microseconds since the epoch) is its pending-created,
 * from which a delay counts. Unknown option names are refused (a misspelt option would otherwise
 * be ignored silently).
 */
export function planOptions(options: unknown, id: string, queue: string, taskPrefix: string, now: bigint): Plan {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new InvalidArgumentsError('options', `must be an object, got ${describe(options)}`);
  }
  const opts = options as EnqueueOptions;
  const names = Object.keys(opts);
  if (names.length === 0) return PLAIN;
  for (const name of names) {
    if (!(OPTION_NAMES as readonly string[]).includes(name)) {
      throw new InvalidArgumentsError(name, `is not an enqueue option (the options are ${OPTION_NAMES.join(', ')})`);
    }
  }
  const fields: [string, string][] = [];
  if (defined(opts.attempts)) fields.push(['attempts', positiveInteger('attempts', opts.attempts)]);
  if (defined(opts.timeout)) fields.push(['timeout', secondsText('timeout', opts.timeout)]);
  if (defined(opts.ttl)) fields.push(['ttl', positiveInteger('ttl', opts.ttl)]);
  if (defined(opts.resultTtl)) fields.push(['result-ttl', keepSeconds('resultTtl', opts.resultTtl)]);
  if (defined(opts.failureTtl)) fields.push(['failure-ttl', keepSeconds('failureTtl', opts.failureTtl)]);
  if (defined(opts.onSuccess)) fields.push(['on-success', checkFunctionName(opts.onSuccess, 'onSuccess')]);
  if (defined(opts.onFailure)) fields.push(['on-failure', checkFunctionName(opts.onFailure, 'onFailure')]);
  if (defined(opts.description)) fields.push(['description', text('description', opts.description)]);

  if (defined(opts.delay) && defined(opts.at)) {
    throw new InvalidArgumentsError('at', 'cannot be combined with delay: give one due time');
  }
  const atFront: unknown = opts.atFront;
  if (defined(atFront) && typeof atFront !== 'boolean') {
    throw new InvalidArgumentsError('atFront', `must be a boolean, got ${describe(atFront)}`);
  }
  const due = dueMicros(opts, now);
  let parents: string[] = [];
  if (defined(opts.dependsOn)) {
    if (due !== null) {
      throw new InvalidArgumentsError('dependsOn', `cannot be combined with ${defined(opts.delay) ? 'delay' : 'at'}: a task ` +
        'with parents is queued when they succeed, it has no due time');
    }
    parents = parentsOf(opts.dependsOn, queue, taskPrefix);
    if (parents.includes(id)) throw new InvalidArgumentsError('dependsOn', `names the task itself (${JSON.stringify(id)})`);
    if (parents.length > 0) fields.push(['depends-on', JSON.stringify(parents)]);
  }

  let placement: Placement = atFront === true ? 'front' : 'back';
  if (due !== null) {
    if (atFront === true) {
      throw new InvalidArgumentsError('atFront', `cannot be combined with ${defined(opts.delay) ? 'delay' : 'at'}: a scheduled ` +
        'task has a due time, not a place in the pending list');
    }
    const dueMs = (due + 999n) / 1000n; // the score never precedes scheduled-for
    placement = `${Number(dueMs)}`;
    fields.push(['state', 'scheduled'], ['scheduled-for', formatMicros(due)]);
  }
  return { fields, placement, parents, relative: defined(opts.delay) };
}

/**
 * How to reach Redis beyond the URL (docs/topology.md). The URL can carry the same settings as
 * query parameters (`?tls_ca=FILE&tls_cert=FILE&tls_key=FILE`, `?cluster=1`), and so can the
 * variables DOTHIS_TLS_CA, DOTHIS_TLS_CERT, DOTHIS_TLS_KEY and DOTHIS_CLUSTER=1, which Python
 * reads too; the options here win over both.
 */
export interface ConnectionOptions {
  /**
   * TLS for a rediss:// URL: `ca` (the CA that signed the server's certificate; default: Node's
   * trusted CAs), `cert` and `key` (a client certificate, for a server that asks for one), each a
   * path to a PEM file or its contents as a Buffer. Any other key is passed to tls.connect as it
   * is (ioredis's own `tls` option). Certificate checks stay on unless you turn them off here.
   */
  tls?: { ca?: string | Buffer; cert?: string | Buffer; key?: string | Buffer; [option: string]: unknown };
  /** Redis Cluster: `true` (the URL names any node), or the nodes to start from. */
  cluster?: boolean | readonly { host: string; port: number }[];
}
