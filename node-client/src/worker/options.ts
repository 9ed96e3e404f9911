/** The worker's settings: the options of `new Worker` and of `dothis-worker`, their defaults (SPEC.md's) and checks. */
import { randomUUID } from 'node:crypto';

import { checkQueueNames, DEFAULT_URL } from '../connection.js';
import { InvalidArgumentsError } from '../errors.js';
import { type ConnectionOptions } from '../options.js';
import { DEFAULTS } from '../protocol.js';
import { checkShards, shardName } from '../shards.js';
import { checkQueueName, describe } from '../validate.js';
import { type Logger } from './log.js';
import { type TaskFunction } from './registry.js';
import { type ScheduleOptions } from './scheduler.js';

export type PoolKind = 'thread' | 'inline';

export interface WorkerOptions extends ConnectionOptions {
  /** Redis URL. Default: $DOTHIS_REDIS_URL, else redis://127.0.0.1:6379/0. */
  url?: string;
  /** The functions, by name (run in the worker's own thread: the inline pool). */
  functions?: Record<string, TaskFunction>;
  /** Path or URL of a module exporting the functions (run in a pool of threads by default). */
  module?: string;
  /**
   * Periodic and cron schedules (SPEC.md 5.15), fired into their queue when this worker serves it;
   * added to those `module` exports as `schedules`.
   */
  schedules?: ScheduleOptions[];
  /** 'thread' (default with `module`) or 'inline' (the only choice with `functions`). */
  pool?: PoolKind;
  /** Tasks run at once. Default 1. */
  concurrency?: number;
  /**
   * Serve each queue as one logical queue over this many shards, `{name.0}` ... (SPEC.md 11.2),
   * claimed in turn; the count must match the one declared in dothis.shards. Default: none.
   */
  shards?: number;
  /** This worker's id. Default: a random UUID. */
  workerId?: string;
  /** Default timeout of a try in ms, for tasks without a `timeout` field. Default: none. */
  timeout?: number;
  leaseMs?: number;
  heartbeatMs?: number;
  reapMs?: number;
  maxClaims?: number;
  maxValueBytes?: number;
  maxFields?: number;
  rejectedMax?: number;
  retryBaseMs?: number;
  retryMaxMs?: number;
  scheduleMs?: number;
  /** Seconds a successful task's hash is kept unless it says otherwise (-1: kept). Default 86400. */
  resultTtl?: number;
  /** Seconds any other outcome's hash is kept unless it says otherwise (-1: kept). Default 604800. */
  failureTtl?: number;
  /** How long BLMOVE blocks when the queues are empty, ms (1000 to 5000). Default 2000. */
  blockMs?: number;
  /** How often a running task's cancel-requested field is checked, ms. Default 500. */
  cancelCheckMs?: number;
  /** How long a call waits for a (re)connection, ms. Default 3000. */
  connectTimeout?: number;
  /** Where log lines go. Default: stderr, one timestamped line each. */
  log?: Logger;
}

export interface Settings {
  url: string;
  /** The queues served, each shard of a sharded queue by its own name. */
  queues: string[];
  /** How many queues, in order, make each priority level (a sharded queue's shards: one level). */
  groups: number[];
  /** The sharded queues: logical name and shard count. */
  sharded: [string, number][];
  pool: PoolKind;
  concurrency: number;
  workerId: string;
  timeoutMs: number | null;
  leaseMs: number;
  heartbeatMs: number;
  reapMs: number;
  maxClaims: number;
  maxValueBytes: number;
  maxFields: number;
  rejectedMax: number;
  retryBaseMs: number;
  retryMaxMs: number;
  scheduleMs: number;
  resultTtl: number;
  failureTtl: number;
  blockMs: number;
  cancelCheckMs: number;
  connectTimeout: number;
  /** TLS and cluster settings of every connection (ConnectionOptions). */
  connection: ConnectionOptions;
}

function integer(name: string, value: unknown, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new InvalidArgumentsError(name, `must be an integer from ${min}${max === Number.MAX_SAFE_INTEGER ? '' : ` to ${max}`}, got ${describe(value)}`);
  }
  return value;
}

function ttl(name: string, value: unknown, fallback: number): number {
  if (value === -1) return -1;
  return integer(name, value, fallback, 1, 999_999_999);
}

function queueNames(queues: unknown): string[] {
  const list = typeof queues === 'string' ? [queues] : queues;
  if (!Array.isArray(list) || list.length === 0) {
    throw new InvalidArgumentsError('queues', `must be a queue name or a non-empty array of them, got ${describe(queues)}`);
  }
  const names = list.map((name) => checkQueueName(name));
  if (new Set(names).size !== names.length) throw new InvalidArgumentsError('queues', 'names a queue twice');
  return names;
}

function poolKind(options: WorkerOptions): PoolKind {
  const hasFunctions = options.functions !== undefined;
  if (hasFunctions === (options.module !== undefined)) {
    throw new InvalidArgumentsError('functions', 'give either `functions` (an object of functions) or `module` (a module exporting them)');
  }
  const pool: unknown = options.pool ?? (hasFunctions ? 'inline' : 'thread');
  if (pool !== 'thread' && pool !== 'inline') throw new InvalidArgumentsError('pool', `must be 'thread' or 'inline', got ${describe(pool)}`);
  if (pool === 'thread' && hasFunctions) {
    throw new InvalidArgumentsError('pool', "the thread pool loads its functions from `module` in each thread; `functions` run inline");
  }
  return pool;
}

/** Checks every option and fills in the defaults; throws InvalidArgumentsError naming the option. */
export function resolveOptions(queues: unknown, options: WorkerOptions): Settings {
  if ((options as unknown) === null || typeof options !== 'object') {
    throw new InvalidArgumentsError('options', `must be an object, got ${describe(options)}`);
  }
  const leaseMs = integer('leaseMs', options.leaseMs, DEFAULTS['lease-ms'], 2);
  const heartbeatMs = integer('heartbeatMs', options.heartbeatMs, Math.min(DEFAULTS['heartbeat-ms'], Math.floor(leaseMs / 3)), 1);
  if (heartbeatMs >= leaseMs) throw new InvalidArgumentsError('heartbeatMs', `must be less than leaseMs (${leaseMs}), got ${heartbeatMs}`);
  const retryBaseMs = integer('retryBaseMs', options.retryBaseMs, DEFAULTS['retry-base-ms'], 1);
  const timeout = options.timeout;
  if (timeout !== undefined && (typeof timeout !== 'number' || !Number.isFinite(timeout) || timeout <= 0)) {
    throw new InvalidArgumentsError('timeout', `must be a positive number of milliseconds, got ${describe(timeout)}`);
  }
  const workerId = options.workerId ?? randomUUID();
  if (typeof workerId !== 'string' || workerId === '' || /[\p{White_Space}\p{Cc}]/u.test(workerId) || Buffer.byteLength(workerId) > 256) {
    throw new InvalidArgumentsError('workerId', `must be 1 to 256 bytes without whitespace or control characters, got ${describe(workerId)}`);
  }
  const url = options.url ?? process.env.DOTHIS_REDIS_URL ?? DEFAULT_URL;
  const connection = { tls: options.tls, cluster: options.cluster };
  const logical = queueNames(queues);
  const shards = options.shards === undefined ? null : logical.map((name) => checkShards(name, options.shards))[0] ?? null;
  const names = shards === null ? logical : logical.flatMap((name) => Array.from({ length: shards }, (_, i) => shardName(name, i)));
  names.forEach((name) => checkQueueName(name));
  checkQueueNames(url, names, connection);
  return {
    url,
    queues: names,
    groups: logical.map(() => shards ?? 1),
    sharded: shards === null ? [] : logical.map((name) => [name, shards]),
    pool: poolKind(options),
    concurrency: integer('concurrency', options.concurrency, 1, 1, 10_000),
    workerId,
    timeoutMs: timeout ?? null,
    leaseMs,
    heartbeatMs,
    reapMs: integer('reapMs', options.reapMs, DEFAULTS['reap-ms'], 1),
    maxClaims: integer('maxClaims', options.maxClaims, DEFAULTS['max-claims'], 1),
    maxValueBytes: integer('maxValueBytes', options.maxValueBytes, DEFAULTS['max-value-bytes'], 1),
    maxFields: integer('maxFields', options.maxFields, DEFAULTS['max-fields'], 1),
    rejectedMax: integer('rejectedMax', options.rejectedMax, DEFAULTS['rejected-max'], 1),
    retryBaseMs,
    retryMaxMs: integer('retryMaxMs', options.retryMaxMs, Math.max(DEFAULTS['retry-max-ms'], retryBaseMs), retryBaseMs),
    scheduleMs: integer('scheduleMs', options.scheduleMs, DEFAULTS['schedule-ms'], 1),
    resultTtl: ttl('resultTtl', options.resultTtl, DEFAULTS['result-ttl']),
    failureTtl: ttl('failureTtl', options.failureTtl, DEFAULTS['failure-ttl']),
    blockMs: integer('blockMs', options.blockMs, 2000, 1000, 5000),
    cancelCheckMs: integer('cancelCheckMs', options.cancelCheckMs, 500, 1),
    connectTimeout: integer('connectTimeout', options.connectTimeout, 3000, 1),
    connection,
  };
}
