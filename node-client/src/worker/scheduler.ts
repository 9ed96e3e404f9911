/**
 * Periodic and cron schedules (SPEC.md 5.15), fired by workers.
 *
 *   new Worker('dothis', { functions: { report }, schedules: [
 *     { every: 25, function: 'report' },                                  // every 25 s
 *     { name: 'nightly', cron: '0 5 * * tue', function: report, args: { full: true } },
 *   ] });
 *
 * A task module passed to `dothis-worker` declares them the same way, as its `schedules` export.
 * Each schedule belongs to one queue (default `dothis`); every worker serving that queue checks it,
 * and fire.lua records the last occurrence fired per schedule in `<queue>:periodic` and enqueues
 * each occurrence once, however many workers run. Occurrences are aligned to the clock (multiples
 * of the period since the Unix epoch, or the cron expression's times in UTC, on the Redis clock),
 * so every worker computes the same ones; a new schedule is armed by its first occurrence and first
 * fires at the next one, and of the occurrences missed while no worker ran only the latest fires.
 */
import { CronExpressionParser } from 'cron-parser';

import { InvalidArgumentsError } from '../errors.js';
import { formatMicros } from '../time.js';
import { checkFunctionName, checkId, checkQueueName, describe, serializeArgs } from '../validate.js';
import { nowIso, nowMs, type Engine } from './engine.js';
import { type QueueKeys } from './keys.js';
import { type Log } from './log.js';

/** A schedule as a worker's `schedules` option (or a task module's `schedules` export) declares it. */
export interface ScheduleOptions {
  /** The function each occurrence runs: its name, or the function itself (found among the worker's functions). */
  function: string | ((...args: never[]) => unknown);
  /** Seconds between occurrences (> 0; occurrences are the multiples of it since the Unix epoch). Give this or `cron`. */
  every?: number;
  /** A cron expression of five fields (minute hour day-of-month month day-of-week), read in UTC. Give this or `every`. */
  cron?: string;
  /** The schedule's name, 1 to 200 bytes, unique within the worker: the field of `<queue>:periodic`. Default: the function name. */
  name?: string;
  /** The args of every occurrence (a JSON object). Default `{}`. */
  args?: Record<string, unknown>;
  /** The queue the occurrences go to; only workers serving it fire them. Default `dothis`. */
  queue?: string;
}

export const DEFAULT_QUEUE = 'dothis';
const NAME_MAX_BYTES = 200;

/** A checked schedule: computes its occurrences and their task ids. */
export class Schedule {
  private constructor(readonly name: string, readonly fn: string, readonly queue: string, readonly argsJson: string,
    readonly periodMs: number | null, readonly cron: string | null) {}

  /**
   * Checks one declaration (`field` names it in errors, e.g. `schedules[0]`); `names` maps a
   * function object to its name among the worker's functions, `offered` lists those names (null:
   * not known yet).
   */
  static from(value: unknown, field: string, names: ReadonlyMap<unknown, string>, offered: ReadonlySet<string> | null): Schedule {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new InvalidArgumentsError(field, `must be an object { function, every | cron, name?, args?, queue? }, got ${describe(value)}`);
    }
    const spec = value as Record<string, unknown>;
    const fn = functionName(spec.function, `${field}.function`, names);
    if (offered !== null && !offered.has(fn)) {
      throw new InvalidArgumentsError(`${field}.function`, `${JSON.stringify(fn)} is not one of this worker's functions (${[...offered].sort().join(', ') || 'none'}); ` +
        'name a function the worker serves, so its occurrences run');
    }
    const name = scheduleName(spec.name ?? fn, `${field}.name`);
    const queue = spec.queue === undefined ? DEFAULT_QUEUE : checkQueueName(spec.queue);
    let argsJson: string;
    try {
      argsJson = serializeArgs(spec.args ?? {});
    } catch (error) {
      if (error instanceof InvalidArgumentsError) throw new InvalidArgumentsError(`${field}.${error.field}`, error.problem);
      throw error;
    }
    if ((spec.every === undefined) === (spec.cron === undefined)) {
      throw new InvalidArgumentsError(field, 'give either `every` (seconds between occurrences) or `cron` (a cron expression), not both nor neither');
    }
    if (spec.every !== undefined) return new Schedule(name, fn, queue, argsJson, periodMs(spec.every, `${field}.every`), null);
    return new Schedule(name, fn, queue, argsJson, null, checkCron(spec.cron, `${field}.cron`));
  }

  /** The latest occurrence at or before `now` (ms since the epoch); for a cron expression, strictly before. */
  latest(now: number): number {
    if (this.periodMs !== null) return Math.floor(now / this.periodMs) * this.periodMs;
    const expression = CronExpressionParser.parse(this.cron ?? '', { currentDate: new Date(now), tz: 'UTC' });
    return expression.prev().getTime();
  }

  /** The task id of an occurrence: `<name>@<occurrence as a timestamp>` (SPEC.md 5.15). */
  taskId(occurrence: number): string {
    return `${this.name}@${formatMicros(BigInt(occurrence) * 1000n)}`;
  }
}

function functionName(value: unknown, field: string, names: ReadonlyMap<unknown, string>): string {
  if (typeof value === 'function') {
    const known = names.get(value) ?? (value.name || undefined);
    if (known === undefined) throw new InvalidArgumentsError(field, 'is an anonymous function that is not one of the worker\'s functions; give its name');
    return known;
  }
  return checkFunctionName(value, field);
}

function scheduleName(value: unknown, field: string): string {
  const name = checkId(value, field);
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes > NAME_MAX_BYTES) throw new InvalidArgumentsError(field, `must be 1 to ${NAME_MAX_BYTES} bytes of UTF-8, got ${bytes}`);
  return name;
}

function periodMs(value: unknown, field: string): number {
  const ms = typeof value === 'number' && Number.isFinite(value) ? Math.trunc(value * 1000) : 0;
  if (ms < 1 || !Number.isSafeInteger(ms)) {
    throw new InvalidArgumentsError(field, `must be a positive number of seconds (at least 0.001), got ${describe(value)}`);
  }
  return ms;
}

/** A cron expression of exactly the five POSIX fields; throws InvalidArgumentsError naming the problem. */
export function checkCron(value: unknown, field = 'cron'): string {
  if (typeof value !== 'string') throw new InvalidArgumentsError(field, `must be a cron expression (a string), got ${describe(value)}`);
  const fields = value.trim().split(/\s+/);
  if (fields.length !== 5) {
    throw new InvalidArgumentsError(field, `${JSON.stringify(value)} has ${fields.length} field(s); a cron expression has five: ` +
      'minute hour day-of-month month day-of-week, e.g. "0 5 * * tue"');
  }
  try {
    CronExpressionParser.parse(value, { tz: 'UTC', strict: false });
  } catch (error) {
    throw new InvalidArgumentsError(field, `${JSON.stringify(value)} is not a valid cron expression (${(error as Error).message})`);
  }
  return value;
}

/** Checks a list of declarations (`schedules` option, a module's export): names unique. */
export function checkSchedules(list: unknown, field: string, names: ReadonlyMap<unknown, string>,
  offered: ReadonlySet<string> | null): Schedule[] {
  if (list === undefined) return [];
  if (!Array.isArray(list)) throw new InvalidArgumentsError(field, `must be an array of schedules, got ${describe(list)}`);
  const schedules = list.map((item, index) => Schedule.from(item, `${field}[${index}]`, names, offered));
  const seen = new Set<string>();
  for (const schedule of schedules) {
    if (seen.has(schedule.name)) {
      throw new InvalidArgumentsError(field, `two schedules are named ${JSON.stringify(schedule.name)}; give one a distinct \`name\``);
    }
    seen.add(schedule.name);
  }
  return schedules;
}

/** Fires the schedules of the queues a worker serves: one tick checks each for a new occurrence. */
export class Scheduler {
  /** How often to tick, ms: a quarter of the shortest period, at most a second. */
  readonly periodMs: number;
  private readonly schedules: { schedule: Schedule; keys: QueueKeys }[];
  private readonly known = new Map<string, number>();

  constructor(private readonly engine: Engine, lanes: readonly QueueKeys[], schedules: readonly Schedule[], private readonly log: Log) {
    const served = new Map(lanes.map((keys) => [keys.queue, keys]));
    this.schedules = [];
    for (const schedule of schedules) {
      const keys = served.get(schedule.queue);
      if (keys) this.schedules.push({ schedule, keys });
      else log.info(`schedule ${schedule.name} fires into queue ${schedule.queue}, which this worker does not serve; a worker serving it fires it`);
    }
    const shortest = Math.min(4000, ...this.schedules.map(({ schedule }) => schedule.periodMs ?? 4000));
    this.periodMs = Math.max(1, Math.min(1000, Math.floor(shortest / 4)));
  }

  get active(): boolean {
    return this.schedules.length > 0;
  }

  /** fire.lua for each schedule whose latest occurrence this worker has not seen yet (SPEC.md 5.15). */
  async tick(): Promise<void> {
    const { engine } = this;
    const now = nowMs(engine.clock);
    for (const { schedule, keys } of this.schedules) {
      const occurrence = schedule.latest(now);
      if (occurrence <= (this.known.get(schedule.name) ?? -1)) continue;
      const id = schedule.taskId(occurrence);
      const fired = await engine.store.fire(keys, schedule.name, occurrence, id, [
        'function', schedule.fn, 'state', 'pending', 'args', schedule.argsJson, 'pending-created', nowIso(engine.clock),
      ]);
      this.known.set(schedule.name, occurrence);
      if (fired === 1) this.log.info(`fired ${id} (${schedule.fn}) into ${schedule.queue}`);
      else if (fired === 2) this.log.info(`schedule ${schedule.name} armed in ${schedule.queue}: it first fires at its next occurrence`);
    }
  }
}

/**
 * The schedules of a worker: those of its `schedules` option and those its task module exports,
 * checked against the functions it offers (`offered`; null while not known), names unique.
 */
export function workerSchedules(declared: { field: string; list: unknown }[], names: ReadonlyMap<unknown, string>,
  offered: ReadonlySet<string> | null): Schedule[] {
  const all = declared.flatMap(({ field, list }) => checkSchedules(list, field, names, offered));
  const seen = new Set<string>();
  for (const schedule of all) {
    if (seen.has(schedule.name)) {
      throw new InvalidArgumentsError('schedules', `the option and the module both declare a schedule named ${JSON.stringify(schedule.name)}; rename one`);
    }
    seen.add(schedule.name);
  }
  return all;
}
