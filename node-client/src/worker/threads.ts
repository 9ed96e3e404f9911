/**
 * The thread pool: one worker thread per concurrent try, each importing the task module itself
 * (thread.ts). A try runs in an idle thread; to stop it (timeout, cancel, forced shutdown) the
 * thread is terminated, which ends even code that never yields, and a fresh thread replaces it.
 * A thread that dies during a try (an uncaught error outside the call, process.exit() in the
 * function) fails the try with `crashed`; the worker goes on. A crash of the whole process (native
 * code) cannot be caught by threads: the reaper of another worker recovers the tasks (SPEC.md 9.2).
 */
import { randomUUID } from 'node:crypto';
import { Worker as Thread } from 'node:worker_threads';

import { type CallResult } from './callable.js';
import { type TryResult } from './decide.js';
import { errorText, type Log } from './log.js';
import { once, type Pool, type RunningTry, type TryRequest } from './pool.js';
import { checkParams, type FunctionInfo } from './registry.js';
import { threadSource } from './thread.js';

interface Current {
  token: string;
  settle: (result: TryResult) => boolean;
  onProgress: TryRequest['onProgress'];
}

interface Slot {
  thread: Thread;
  current: Current | null;
  /** Set when the pool terminates the thread on purpose. */
  retired: boolean;
  /** The last uncaught error of the thread, for the crash report. */
  error: string | null;
}

const RESPAWN_DELAY_MS = 1000;

export class ThreadPool implements Pool {
  readonly kind = 'thread';
  functions: FunctionInfo[] = [];
  schedules: unknown = [];
  private readonly idle: Slot[] = [];
  private readonly waiters: ((slot: Slot) => void)[] = [];
  private readonly live = new Set<Slot>();
  private readonly source = threadSource();
  private closed = false;

  constructor(private readonly moduleUrl: string, private readonly size: number, private readonly log: Log) {}

  async start(): Promise<void> {
    const { slot, offered, schedules } = await this.spawn();
    this.functions = offered.map((info) => ({ name: info.name, params: checkParams(info.name, info.params) }));
    this.schedules = schedules;
    this.release(slot);
    const others = await Promise.all(Array.from({ length: this.size - 1 }, () => this.spawn()));
    for (const other of others) this.release(other.slot);
  }

  run(request: TryRequest): RunningTry {
    const { promise, settle } = once<TryResult>();
    const token = randomUUID();
    let slot: Slot | null = null;
    let stopped = false;
    void this.acquire().then((free) => {
      if (stopped) {
        this.release(free);
        return;
      }
      slot = free;
      free.current = { token, settle, onProgress: request.onProgress };
      const { name, args, context, maxDepth } = request;
      try {
        free.thread.postMessage({ type: 'run', token, name, args, context, maxDepth });
      } catch (error) {
        free.current = null;
        this.release(free);
        settle({ kind: 'crashed', detail: `the try could not be handed to a thread: ${errorText(error)}` });
      }
    });
    return {
      result: promise,
      stop: (result) => {
        if (!settle(result)) return;
        stopped = true;
        const running = slot;
        if (running?.current?.token === token) {
          running.current = null;
          this.retire(running);
        }
      },
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.live].map((slot) => {
      slot.retired = true;
      return slot.thread.terminate();
    }));
  }

  /** Whether close() was called (a getter: it may change while replace() waits). */
  private get ended(): boolean {
    return this.closed;
  }

  private acquire(): Promise<Slot> {
    const free = this.idle.pop();
    if (free) return Promise.resolve(free);
    return new Promise((resolve) => { this.waiters.push(resolve); });
  }

  private release(slot: Slot): void {
    if (this.closed) void slot.thread.terminate();
    if (slot.retired || this.closed) return;
    const waiter = this.waiters.shift();
    if (waiter) waiter(slot);
    else this.idle.push(slot);
  }

  private retire(slot: Slot): void {
    slot.retired = true;
    void slot.thread.terminate();
  }

  /** Starts a thread; resolves once it has imported the module and said which functions it offers. */
  private spawn(): Promise<{ slot: Slot; offered: { name: string; params: unknown }[]; schedules: unknown }> {
    return new Promise((resolve, reject) => {
      const thread = new Thread(this.source, { eval: true, workerData: { moduleUrl: this.moduleUrl } });
      const slot: Slot = { thread, current: null, retired: false, error: null };
      let started = false;
      this.live.add(slot);
      thread.on('message', (message: Record<string, unknown>) => {
        if (message.type === 'ready') {
          started = true;
          resolve({ slot, offered: message.functions as { name: string; params: unknown }[], schedules: message.schedules });
        } else if (message.type === 'load-error') {
          slot.retired = true;
          void thread.terminate();
          reject(new Error(`cannot load the task module ${this.moduleUrl}: ${String(message.message)}`));
        } else {
          this.onMessage(slot, message);
        }
      });
      thread.on('error', (error: Error) => { slot.error = error.stack ?? error.message; });
      thread.once('exit', (code: number) => {
        this.live.delete(slot);
        if (!started) reject(new Error(`a pool thread exited (code ${code}) before it loaded ${this.moduleUrl}: ${slot.error ?? ''}`));
        else this.onExit(slot, code);
      });
    });
  }

  private onMessage(slot: Slot, message: Record<string, unknown>): void {
    const current = slot.current;
    if (!current || message.token !== current.token) return; // a late message of a stopped try
    if (message.type === 'done') {
      slot.current = null;
      current.settle(message.result as CallResult);
      this.release(slot);
    } else if (message.type === 'progress') {
      const ack = (answer: { ok: boolean; error?: string }): void => {
        if (slot.current === current) slot.thread.postMessage({ type: 'progress-ack', seq: message.seq, ...answer });
      };
      current.onProgress(message.fraction, message.message).then((ok) => { ack({ ok }); }, (error: unknown) => {
        ack({ ok: false, error: errorText(error) });
      });
    }
  }

  private onExit(slot: Slot, code: number): void {
    const idle = this.idle.indexOf(slot);
    if (idle !== -1) this.idle.splice(idle, 1);
    if (slot.current) {
      const detail = `the thread running the function died (exit code ${code})${slot.error ? `: ${slot.error.split('\n')[0] ?? ''}` : ''}`;
      slot.current.settle({ kind: 'crashed', detail });
      slot.current = null;
    } else if (!slot.retired) {
      this.log.warning(`a pool thread exited (code ${code}) between tries${slot.error ? `: ${slot.error}` : ''}; starting another`);
    }
    void this.replace();
  }

  /** A new thread in place of one that ended, retried every second while the module fails to load. */
  private async replace(): Promise<void> {
    while (!this.closed) {
      try {
        const { slot } = await this.spawn();
        this.release(slot);
        return;
      } catch (error) {
        if (this.ended) return;
        this.log.error(`cannot start a pool thread (${errorText(error)}); trying again in ${RESPAWN_DELAY_MS} ms`);
        await new Promise((resolve) => setTimeout(resolve, RESPAWN_DELAY_MS));
      }
    }
  }
}
