/**
 * The Node worker (SPEC.md section 9): claims tasks from one or more queues, runs each through
 * lifecycle.ts, keeps its leases (heartbeat.ts), recovers tasks of dead workers (reaper.ts),
 * promotes due scheduled entries (promoter.ts), runs follow-ups (followups.ts), carries out cancel
 * requests (cancels.ts) and fires periodic schedules (scheduler.ts). It uses three connections:
 * commands, the blocking claim, heartbeats.
 *
 *   const worker = new Worker('emails', { functions: { send }, concurrency: 4 });
 *   await worker.run();            // resolves once stop() has finished
 *   await worker.stop({ graceMs }); // from elsewhere, or worker.handleSignals() for SIGTERM/SIGINT
 */
import { Clock } from '../clock.js';
import { Link } from '../connection.js';
import { InvalidArgumentsError } from '../errors.js';
import { declareShards } from '../shards.js';
import { Claimer } from './claims.js';
import { checkCancels } from './cancels.js';
import { letGo, now, type Engine, type Held } from './engine.js';
import { Followups } from './followups.js';
import { Heartbeat } from './heartbeat.js';
import { InlinePool } from './inline.js';
import { QueueKeys } from './keys.js';
import { processEntry } from './lifecycle.js';
import { importModule, moduleUrl } from './loader.js';
import { errorText, logFor, stderrLogger, type Log } from './log.js';
import { resolveOptions, type Settings, type WorkerOptions } from './options.js';
import { type Pool } from './pool.js';
import { promoteDue } from './promoter.js';
import { Reaper } from './reaper.js';
import { Scheduler, workerSchedules, type Schedule } from './scheduler.js';
import { describeFunctions, type TaskFunction } from './registry.js';
import { pickFunctions, pickSchedules } from './callable.js';
import { Store, type Claim } from './store.js';
import { ThreadPool } from './threads.js';
import { Periodic, sleep } from './timers.js';
import { warnAboutServer } from './server.js';

export interface StopOptions {
  /** How long running tries may go on before they are stopped and their tasks returned to pending. Default 30000. */
  graceMs?: number;
}

const CLOCK_MS = 60_000;
const FORCED_WAIT_MS = 2000;

export class Worker {
  readonly queues: readonly string[];
  readonly id: string;
  private readonly settings: Settings;
  private readonly options: WorkerOptions;
  private readonly log: Log;
  private readonly lanes: QueueKeys[];
  private stopRequested: { graceMs: number } | null = null;
  private forced: (() => void) | null = null;
  private running: Promise<void> | null = null;
  private claimer: Claimer | null = null;
  /** Tasks whose tries were stopped by a forced stop: returned to pending once the worker keys are gone. */
  private giveBackList: Claim[] = [];

  /** Checks every option at once (InvalidArgumentsError names the bad one); connects in run(). */
  constructor(queues: string | readonly string[], options: WorkerOptions) {
    this.settings = resolveOptions(queues, options);
    if (options.functions !== undefined) describeFunctions(options.functions);
    this.options = options;
    this.declaredSchedules(options.functions ?? null, null);
    this.queues = this.settings.queues;
    this.id = this.settings.workerId;
    this.lanes = this.queues.map((queue) => new QueueKeys(queue));
    this.log = logFor(options.log ?? stderrLogger, 'worker');
  }

  /** Serves the queues until stop(); rejects when the functions cannot be loaded. */
  run(): Promise<void> {
    this.running ??= this.serve();
    return this.running;
  }

  /**
   * Stops claiming, lets running tries finish for `graceMs`, then stops the others and returns their
   * tasks to pending (SPEC.md 9.4); deletes the worker keys. Resolves once the worker has stopped.
   * `graceMs: 0` stops the running tries at once, also during the grace period of an earlier call.
   */
  async stop(options: StopOptions = {}): Promise<void> {
    const graceMs = options.graceMs ?? 30_000;
    if (typeof graceMs !== 'number' || !(graceMs >= 0)) {
      throw new InvalidArgumentsError('graceMs', `must be a number of milliseconds >= 0, got ${String(graceMs)}`);
    }
    if (graceMs === 0) {
      this.stopRequested = { graceMs: 0 };
      this.forced?.();
    }
    this.stopRequested ??= { graceMs };
    this.claimer?.stop();
    await this.running?.catch(() => undefined);
  }

  /** SIGTERM and SIGINT stop the worker with `graceMs`; a second signal stops it at once. Returns the uninstaller. */
  handleSignals(graceMs = 30_000): () => void {
    const onSignal = (signal: string): void => {
      const again = this.stopRequested !== null;
      this.log.info(again ? `${signal} again: stopping now` : `${signal}: stopping (grace ${graceMs} ms)`);
      void this.stop({ graceMs: again ? 0 : graceMs });
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    return () => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
    };
  }

  private async pool(): Promise<Pool> {
    const { settings, options } = this;
    if (options.module === undefined) return new InlinePool(options.functions ?? {});
    const url = moduleUrl(options.module);
    if (settings.pool === 'thread') return new ThreadPool(url, settings.concurrency, logFor(options.log ?? stderrLogger, 'pool'));
    const mod = await importModule(url);
    const functions = pickFunctions(mod) as Record<string, TaskFunction>;
    describeFunctions(functions);
    return new InlinePool(functions, pickSchedules(mod, functions));
  }

  /**
   * The schedules of the `schedules` option and of the module's export, checked (InvalidArgumentsError);
   * `functions` null: the module's, known to the pool only (checked by name once it has started).
   */
  private declaredSchedules(functions: Record<string, TaskFunction> | null, offered: string[] | null, fromModule: unknown = []): Schedule[] {
    const names = new Map<unknown, string>(Object.entries(functions ?? {}).map(([name, fn]) => [fn, name]));
    const known = functions !== null ? new Set(Object.keys(functions)) : offered === null ? null : new Set(offered);
    return workerSchedules([{ field: 'schedules', list: this.options.schedules }, { field: 'module.schedules', list: fromModule }], names, known);
  }

  private async serve(): Promise<void> {
    const { settings } = this;
    const connection = (name: string): Link => new Link({ ...settings.connection, url: settings.url, connectTimeout: settings.connectTimeout, connectionName: name });
    const links = [connection('dothis-worker'), connection('dothis-worker-claim'), connection('dothis-worker-heartbeat')] as const;
    const pool = await this.pool();
    try {
      await pool.start();
      await this.serveWith(pool, links);
    } finally {
      await pool.close();
      await Promise.allSettled(links.map((link) => link.close()));
    }
  }

  private async serveWith(pool: Pool, [main, blocking, beats]: readonly [Link, Link, Link]): Promise<void> {
    const { settings } = this;
    const schedules = this.declaredSchedules(this.options.functions ?? null, pool.functions.map((info) => info.name), pool.schedules);
    const store = new Store(main);
    const clock = new Clock({ run: (command) => main.run(command), url: main.url, warn: (m) => { this.log.warning(m); } });
    main.redis.on('ready', () => { clock.reconnected(); });
    const byQueue = new Map(this.lanes.map((keys) => [keys.queue, keys]));
    const followups = new Followups(store, clock, settings.failureTtl, logFor(this.options.log ?? stderrLogger, 'followups'));
    const engine: Engine = {
      settings, store, clock, pool, log: this.log, held: new Map(),
      functions: new Map(pool.functions.map((info) => [info.name, info])),
      followUp: async (queue, id) => {
        const keys = byQueue.get(queue);
        if (keys) await followups.run(keys, id).catch((error: unknown) => { this.log.warning(`follow-ups of ${id} deferred (${errorText(error)})`); });
      },
    };
    const heartbeat = new Heartbeat(engine, new Store(beats), this.lanes, (held) => { this.lost(engine, held); });
    if (!await this.connect(clock, heartbeat, main)) return;
    await warnAboutServer(store, main.url, this.log);
    this.log.info(`worker ${settings.workerId} serving ${this.queues.join(', ')} on ${main.url} (${pool.kind} pool, concurrency ` +
      `${settings.concurrency}) with ${engine.functions.size} function(s): ${[...engine.functions.keys()].sort().join(', ')}`);
    const loops = this.loops(engine, heartbeat, followups);
    for (const loop of loops) loop.start();
    const scheduler = new Scheduler(engine, this.lanes, schedules, logFor(this.options.log ?? stderrLogger, 'schedules'));
    if (scheduler.active) {
      const firing = new Periodic('schedules', scheduler.periodMs, false, () => scheduler.tick(), logFor(this.options.log ?? stderrLogger, 'schedules'));
      firing.start(true);
      loops.push(firing);
    }
    const claimer = new Claimer(engine, blocking, this.lanes, (keys, entry, taken) => processEntry(engine, keys, entry, taken), settings.groups);
    this.claimer = claimer;
    if (this.stopRequested) claimer.stop();
    await claimer.run();
    await this.drain(engine, claimer);
    for (const loop of loops) await loop.stop();
    await heartbeat.leave().catch((error: unknown) => { this.log.warning(`cannot delete the worker keys (${errorText(error)})`); });
    await this.giveBack(engine);
    this.log.info(`worker ${settings.workerId} stopped`);
  }

  /**
   * Measures the clock, declares the shard count of each sharded queue (a count other than the
   * declared one rejects: InvalidArgumentsError) and registers, retrying while Redis is
   * unreachable; false when stopped first.
   */
  private async connect(clock: Clock, heartbeat: Heartbeat, main: Link): Promise<boolean> {
    for (let delay = 100, failing = false; !this.stopRequested; delay = Math.min(delay * 2, 5000)) {
      try {
        await clock.ready();
        for (const [name, count] of this.settings.sharded) await declareShards((command) => main.run(command), name, count);
        await heartbeat.register();
        return true;
      } catch (error) {
        if (error instanceof InvalidArgumentsError) throw error;
        if (!failing) this.log.warning(`cannot start on Redis (${errorText(error)}); retrying with backoff`);
        failing = true;
        await sleep(delay);
      }
    }
    return false;
  }

  private loops(engine: Engine, heartbeat: Heartbeat, followups: Followups): Periodic[] {
    const { settings } = this;
    const log = (source: string): Log => logFor(this.options.log ?? stderrLogger, source);
    const reaper = new Reaper({ ...engine, log: log('reaper') }, this.lanes, followups);
    return [
      new Periodic('heartbeat', settings.heartbeatMs, false, () => heartbeat.beat(), log('heartbeat')),
      new Periodic('recovery sweep', settings.reapMs, true, () => reaper.pass(), log('reaper')),
      new Periodic('promote', settings.scheduleMs, true, () => promoteDue(engine, this.lanes), log('promoter')),
      new Periodic('cancel check', settings.cancelCheckMs, false, () => checkCancels(engine), log('cancels')),
      new Periodic('clock', CLOCK_MS, false, async () => { engine.clock.reconnected(); await engine.clock.ready(); }, log('clock')),
    ];
  }

  /** The heartbeat found a held task taken away (its lease ran out and a reaper recovered it): stop its try. */
  private lost(engine: Engine, held: Held): void {
    engine.log.warning(`task ${held.claim.id} is no longer this worker's (its lease ran out and it was recovered); stopping its try`);
    letGo(engine, held.claim);
    held.stop?.({ kind: 'abandoned', reason: 'the task is no longer this worker\'s' });
  }

  /** Lets the tasks being handled finish within the grace period; then stops their tries (nothing is recorded for them). */
  private async drain(engine: Engine, claimer: Claimer): Promise<void> {
    const handling = claimer.handling;
    if (handling.length === 0) return;
    const graceMs = this.stopRequested?.graceMs ?? 0;
    this.log.info(`stopping: letting ${handling.length} running task(s) finish (grace ${graceMs} ms)`);
    const forced = new Promise<void>((resolve) => {
      this.forced = resolve;
      setTimeout(resolve, graceMs).unref();
    });
    const done = Promise.all(handling).then(() => true);
    if (await Promise.race([done, forced.then(() => false)])) return;
    this.log.warning(`returning ${engine.held.size} running task(s) to pending`);
    this.giveBackList = [...engine.held.values()].map((held) => held.claim);
    for (const held of engine.held.values()) held.stop?.({ kind: 'abandoned', reason: 'the worker stops' });
    await Promise.race([done, sleep(FORCED_WAIT_MS)]);
  }

  /** SPEC.md 9.4: after the worker keys are gone, recover.lua with itself as the owner and max-claims 0 for each task it gave up. */
  private async giveBack(engine: Engine): Promise<void> {
    for (const claim of this.giveBackList) {
      const outcome = await engine.store.recover(claim.keys, claim.entry, claim.id, claim.workerId, 0, now(engine.clock),
        engine.settings.failureTtl, false).catch((error: unknown) => `not returned (${errorText(error)}); a reaper will`);
      this.log.info(`task ${claim.id}: ${outcome}`);
    }
    this.giveBackList = [];
  }
}
