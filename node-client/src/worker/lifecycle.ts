/**
 * One claimed entry, from start.lua to its recorded outcome (SPEC.md 5.2 to 5.5, 5.8, 5.10, 8.1):
 * find the id, start, check, run the try, decide, record with finish.lua or retry.lua, then run the
 * follow-ups finish made due.
 */
import { ReplyError } from 'ioredis';

import { ConnectionFailedError } from '../errors.js';
import { cancelRequested, expired, prepare, type Failure, type Invocation } from './checks.js';
import { decide, ended, type Ending, type NextTry } from './decide.js';
import { letGo, now, nowIso, nowMs, type Engine, type Held } from './engine.js';
import { rejectionRecord, showEntry, type QueueKeys } from './keys.js';
import { fieldMap, type Claim, type StartReply, type Taken } from './store.js';
import { sleep } from './timers.js';
import { errorText } from './log.js';
import { runTry } from './tries.js';

/** finish.lua and retry.lua are retried through outages for about two minutes (SPEC.md 9.3), then given up. */
const RECORD_TRIES = 60;
const FIRST_DELAY_MS = 100;

/**
 * Handles one entry the claim loop moved into executing. Never throws. `taken`: take.lua's reply
 * for the entry (SPEC.md 5.18): a start reply is acted on as start.lua's; 'unstarted' (or none)
 * goes the way of a claimed entry (5.2).
 */
export async function processEntry(engine: Engine, keys: QueueKeys, entry: Buffer, taken?: Taken['reply']): Promise<void> {
  try {
    await handle(engine, keys, entry, taken);
  } catch (error) {
    engine.log.error(`entry ${showEntry(entry)} of ${keys.executing}: ${errorText(error)}; the reaper will see to it`);
  }
}

async function handle(engine: Engine, keys: QueueKeys, entry: Buffer, taken?: Taken['reply']): Promise<void> {
  const parsed = keys.parseEntry(entry);
  if ('problem' in parsed) {
    await reject(engine, keys, entry, 'invalid-id', parsed.problem);
    return;
  }
  const id = parsed.id;
  const reply = taken && taken.status !== 'unstarted' ? taken : await start(engine, keys, entry, id);
  if (reply === null) return;
  switch (reply.status) {
    case 'missing':
      await reject(engine, keys, entry, 'missing-hash', `no key ${keys.task(id)}`);
      return;
    case 'wrong-type':
      await reject(engine, keys, entry, 'wrong-type', `${keys.task(id)} is a ${reply.type}, not a hash`);
      return;
    case 'duplicate':
      engine.log.info(`dropped entry ${showEntry(entry)}: task ${id} is ${reply.state} already (a duplicate entry)`);
      return;
    case 'lost':
      engine.log.info(`entry ${showEntry(entry)} left executing before it started (recovered by a reaper)`);
      return;
    default:
      break;
  }
  const claim: Claim = { keys, entry, id, workerId: engine.settings.workerId, claims: reply.claims };
  const held: Held = { claim, fn: null, since: null, stop: null };
  engine.held.set(keys.task(id), held);
  try {
    await afterStart(engine, held, reply);
  } finally {
    letGo(engine, claim);
  }
}

async function afterStart(engine: Engine, held: Held, reply: Exclude<StartReply, { status: 'missing' | 'wrong-type' | 'duplicate' | 'lost' }>): Promise<void> {
  if (reply.status === 'too-large') {
    await record(engine, held.claim, ended({ code: 'too-large', reason: reply.detail }, nowIso(engine.clock)));
    return;
  }
  if (reply.status === 'invalid-state') {
    const failure = { code: 'invalid-state', reason: `state holds ${JSON.stringify(reply.state.slice(0, 64))}, which is not a state of the protocol` };
    await record(engine, held.claim, ended(failure, nowIso(engine.clock)));
    return;
  }
  const fields = reply.fields;
  const checked = beforeTry(engine, fields);
  if ('failure' in checked) {
    await record(engine, held.claim, ended(checked.failure, nowIso(engine.clock)));
    return;
  }
  const invocation = checked.invocation;
  const result = await runTry(engine, held, invocation);
  if (result.kind === 'abandoned') {
    engine.log.warning(`try of ${held.claim.id} abandoned (${result.reason}); nothing recorded`);
    return;
  }
  const decision = decide(result, invocation.info.name, invocation, engine.settings, nowMs(engine.clock), 0.5 + Math.random() / 2);
  await record(engine, held.claim, decision);
}

/** Checks 7a to 14 of SPEC.md 8.1. */
function beforeTry(engine: Engine, fields: Map<string, Buffer>): { invocation: Invocation } | { failure: Failure } {
  const cancelled = cancelRequested(fields) ?? expired(fields, nowMs(engine.clock));
  if (cancelled) return { failure: cancelled };
  return prepare(fields, engine.functions, engine.settings.timeoutMs);
}

/** start.lua; when its reply is lost, the ownership read instead (SPEC.md 5.3 Errors). null: nothing to do. */
async function start(engine: Engine, keys: QueueKeys, entry: Buffer, id: string): Promise<StartReply | null> {
  const { settings } = engine;
  const leaseExpires = nowMs(engine.clock) + settings.leaseMs;
  try {
    return await engine.store.start(keys, entry, id, settings.workerId, nowIso(engine.clock), settings, leaseExpires);
  } catch (error) {
    if (!(error instanceof ConnectionFailedError)) throw error;
    engine.log.warning(`the reply to start of ${id} was lost (${error.message}); reading the hash`);
  }
  for (let delay = FIRST_DELAY_MS; ; delay = Math.min(delay * 2, 5000)) {
    try {
      return await afterLostStart(engine, keys, id);
    } catch (error) {
      if (!(error instanceof ConnectionFailedError)) throw error;
      await sleep(delay);
    }
  }
}

async function afterLostStart(engine: Engine, keys: QueueKeys, id: string): Promise<StartReply | null> {
  const key = keys.task(id);
  const [state, worker, claims] = await engine.store.run((redis) => redis.hmget(key, 'state', 'worker', 'claims'));
  if (state !== 'executing' || worker !== engine.settings.workerId || claims === null) {
    engine.log.warning(`start of ${id} did not run for this worker: the reaper handles the entry`);
    return null;
  }
  const pairs = await engine.store.run((redis) => redis.hgetallBuffer(key));
  const fields = fieldMap(Object.entries(pairs).flatMap(([name, value]) => [Buffer.from(name), value]));
  const { maxFields, maxValueBytes } = engine.settings;
  if (fields.size > maxFields) return { status: 'too-large', claims: Number(claims), detail: `the hash has ${fields.size} fields` };
  for (const [name, value] of fields) {
    if (Math.max(Buffer.byteLength(name), value.length) > maxValueBytes) {
      return { status: 'too-large', claims: Number(claims), detail: `field ${JSON.stringify(name.slice(0, 64))} holds ${value.length} bytes` };
    }
  }
  return { status: 'ok', claims: Number(claims), fields };
}

async function reject(engine: Engine, keys: QueueKeys, entry: Buffer, code: string, reason: string): Promise<void> {
  engine.log.warning(`rejected entry ${showEntry(entry)} of ${keys.pending}: ${reason} (${code})`);
  const record = rejectionRecord(entry, code, reason, engine.settings.workerId, engine.clock.now());
  await engine.store.reject(keys, entry, record, engine.settings.rejectedMax);
}

/** finish.lua (an Ending) or retry.lua (a NextTry), retried through outages; then the follow-ups it made due. */
export async function record(engine: Engine, claim: Claim, decision: Ending | NextTry): Promise<void> {
  const { settings, store } = engine;
  const write = (): Promise<number> => {
    if (decision.kind === 'next-try') return store.retry(claim, decision.dueMs, decision.fields);
    const success = decision.outcome === 'successful';
    const defaultTtl = success ? settings.resultTtl : settings.failureTtl;
    const at = now(engine.clock);
    const horizon = defaultTtl > 0 ? at.ms - defaultTtl * 1000 : 0;
    return store.finish(claim, success ? 'succeeded' : 'failed', defaultTtl, horizon, at.ms, decision.fields);
  };
  let written: number | null = null;
  for (let attempt = 0, delay = FIRST_DELAY_MS; attempt < RECORD_TRIES; attempt += 1, delay = Math.min(delay * 2, 2000)) {
    try {
      written = await write();
      break;
    } catch (error) {
      if (!(error instanceof ConnectionFailedError) && !(error instanceof ReplyError)) throw error;
      if (attempt === 0) engine.log.warning(`cannot record the outcome of ${claim.id} (${errorText(error)}); retrying`);
      await sleep(delay);
    }
  }
  letGo(engine, claim); // recorded (or given up): no more lease renewals
  if (written === null) {
    engine.log.error(`gave up recording the outcome of ${claim.id}; it goes back to pending when its lease runs out`);
  } else if (written === 0) {
    engine.log.warning(`outcome of ${claim.id} discarded: the task is no longer this claim's (recovered or taken over)`);
  } else if (written === -1) {
    engine.log.warning(`outcome of ${claim.id} dropped: its hash is gone (deleted, or Redis lost it: SPEC.md 4.4)`);
  } else if (written === 2) {
    await engine.followUp(claim.keys.queue, claim.id);
  }
}
