/**
 * One try of a task: the call in the pool, stopped at its timeout (SPEC.md 9.5), on a cancel
 * request (5.14, found by cancels.ts) or when the task is taken away (5.6); its progress reports
 * written with progress.lua (5.16).
 */
import { LIMITS } from '../protocol.js';
import { type Invocation } from './checks.js';
import { type TryResult } from './decide.js';
import { nowIso, type Engine, type Held } from './engine.js';
import { errorText } from './log.js';
import { type Claim } from './store.js';
import { after } from './timers.js';

/** Checks a progress report and writes it; true when this try still holds the task. */
async function report(engine: Engine, claim: Claim, fraction: unknown, message: unknown): Promise<boolean> {
  if (typeof fraction !== 'number' || !Number.isFinite(fraction) || fraction < 0 || fraction > 1) {
    throw new RangeError(`progress: the fraction must be a number from 0 to 1, got ${String(fraction)}`);
  }
  if (message !== undefined && message !== null && typeof message !== 'string') {
    throw new RangeError(`progress: the message must be text, got a ${typeof message}`);
  }
  const json = JSON.stringify({ fraction, ...(typeof message === 'string' ? { message } : {}), updated: nowIso(engine.clock) });
  try {
    return await engine.store.progress(claim, json);
  } catch (error) {
    engine.log.warning(`progress of ${claim.id} not written (${errorText(error)})`);
    return false;
  }
}

/** Runs the try of a held task and says how it ended. */
export async function runTry(engine: Engine, held: Held, invocation: Invocation): Promise<TryResult> {
  const { claim } = held;
  const running = engine.pool.run({
    name: invocation.info.name,
    args: invocation.args,
    context: {
      id: claim.id,
      queue: claim.keys.queue,
      function: invocation.info.name,
      tryNumber: invocation.retries + 1,
      attempts: invocation.attempts,
      workerId: claim.workerId,
      claims: claim.claims,
    },
    maxDepth: LIMITS['json-max-depth'],
    onProgress: (fraction, message) => report(engine, claim, fraction, message),
  });
  held.fn = invocation.info.name;
  held.since = nowIso(engine.clock);
  held.stop = (result) => { running.stop(result); };
  const timeoutMs = invocation.timeoutMs;
  const cancelTimer = timeoutMs === null ? undefined : after(timeoutMs, () => { running.stop({ kind: 'timeout', timeoutMs }); });
  try {
    const result = await running.result;
    const limit = engine.settings.maxValueBytes;
    if (result.kind === 'returned' && result.json.length * 3 > limit && Buffer.byteLength(result.json) > limit) {
      const size = Buffer.byteLength(result.json);
      return { kind: 'too-large', detail: `the function returned ${size} bytes of JSON, more than the worker's max-value-bytes of ${limit}` };
    }
    return result;
  } finally {
    cancelTimer?.();
    held.stop = null;
    held.since = null;
  }
}
