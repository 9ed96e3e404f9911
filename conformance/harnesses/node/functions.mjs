// The standard functions of the conformance suite (conformance/README.md), for the Node worker:
//   dothis-worker --queue NAME conformance/harnesses/node/functions.mjs
// Each declares its parameters (`params`), so args that do not fit fail with bad-arguments.
// The `schedules` export declares conformance-tick, as the Python harness does: every second,
// tick with args {"text": "tick"}, fired into the queue conf-periodic only (a case that serves that
// queue sees its occurrences; no other case's worker serves it, so no other case sees them); on a
// Redis Cluster the orchestrator names the queue {conf-periodic} in DOTHIS_CONFORMANCE_PERIODIC_QUEUE.
import { setTimeout as sleepMs } from 'node:timers/promises';

/** Returns `text` unchanged (any JSON value). */
export function echo({ text }) {
  return text;
}
echo.params = ['text'];

/** Returns a + b; integers beyond 2^53 arrive as BigInt and are added exactly. */
export function add({ a, b }) {
  if (typeof a === 'bigint' || typeof b === 'bigint') return BigInt(a) + BigInt(b);
  return a + b;
}
add.params = ['a', 'b'];

/** Sleeps `seconds`, then returns them. */
export async function sleep({ seconds }) {
  await sleepMs(seconds * 1000);
  return seconds;
}
sleep.params = ['seconds'];

/** Throws an Error whose message is `message` (error-exception starts with "Error: "). */
export function fail({ message }) {
  throw new Error(message);
}
fail.params = ['message'];

/** Reports each fraction as progress ("step <n>"), sleeping `seconds` after each; returns how many. */
export async function report_progress({ fractions, seconds }, ctx) {
  for (const [index, fraction] of fractions.entries()) {
    await ctx.progress(fraction, `step ${index + 1}`);
    await sleepMs(seconds * 1000);
  }
  return fractions.length;
}
report_progress.params = ['fractions', 'seconds'];

/** Ends the thread or process running this try at once, with exit status `code` (a crash). */
export function crash({ code }) {
  process.exit(code);
}
crash.params = ['code'];

/** The function of the conformance-tick schedule: returns `text`. */
export function tick({ text }) {
  return text;
}
tick.params = ['text'];

// conf-periodic; the orchestrator names {conf-periodic} instead when it runs on a Redis Cluster
export const PERIODIC_QUEUE = process.env.DOTHIS_CONFORMANCE_PERIODIC_QUEUE || 'conf-periodic';

/** Periodic schedules (SPEC.md 5.15) the worker fires when it serves their queue. */
export const schedules = [
  { name: 'conformance-tick', every: 1, function: tick, args: { text: 'tick' }, queue: PERIODIC_QUEUE },
];
