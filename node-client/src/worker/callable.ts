/**
 * Calling a task function and describing what it did, the same way in the worker's own thread
 * (the inline pool) and in a pool thread.
 *
 * Every function of this file is SELF-CONTAINED: it uses no import and no module-level value, only
 * its arguments, globals and the other functions of this file by name. The thread pool sends their
 * source text (Function.prototype.toString) to each thread it starts (threads.ts), so one copy of
 * this code serves both builds of the package (ESM and CommonJS) without a file path to load.
 */

/** What one call of a task function produced. */
export type CallResult =
  | { kind: 'returned'; json: string }
  | { kind: 'raised'; reason: string; exception: string }
  | { kind: 'retry'; reason: string; delayMs: number | null }
  | { kind: 'unserializable'; detail: string };

/**
 * The strict JSON text of a return value (SPEC.md 8.3, 5.4): plain objects, arrays, strings,
 * finite numbers, BigInt (written as an integer), booleans and null, at most `maxDepth` containers
 * deep. `undefined` is left out of objects and is `null` in arrays and as the value itself (a
 * function that returns nothing), as JSON.stringify does. Anything else (NaN, Infinity, a class
 * instance such as Date or Map, a function, a symbol, a cycle) has no JSON form: unserializable.
 */
export function encodeValue(value: unknown, maxDepth: number): CallResult {
  const encode = (item: unknown, depth: number, path: string): string => {
    if (item === null || item === undefined) return 'null';
    switch (typeof item) {
      case 'boolean':
        return item ? 'true' : 'false';
      case 'string':
        return JSON.stringify(item);
      case 'bigint':
        return item.toString();
      case 'number':
        if (!Number.isFinite(item)) throw new TypeError(`${path} is ${String(item)}, which is not JSON`);
        return JSON.stringify(item);
      case 'object':
        break;
      default:
        throw new TypeError(`${path} is a ${typeof item}, which has no JSON form`);
    }
    if (depth > maxDepth) throw new TypeError(`${path} nests deeper than ${maxDepth} levels (a cycle?)`);
    if (Array.isArray(item)) {
      const parts: string[] = [];
      for (let index = 0; index < item.length; index += 1) parts.push(encode(item[index], depth + 1, `${path}[${index}]`));
      return `[${parts.join(',')}]`;
    }
    const proto: unknown = Object.getPrototypeOf(item);
    if (proto !== Object.prototype && proto !== null) {
      const name = (proto as { constructor?: { name?: unknown } } | null)?.constructor?.name;
      throw new TypeError(`${path} is an instance of ${typeof name === 'string' ? name : 'a class'}, which has no exact JSON form`);
    }
    const parts: string[] = [];
    for (const [key, member] of Object.entries(item)) {
      if (member !== undefined) parts.push(`${JSON.stringify(key)}:${encode(member, depth + 1, `${path}.${key}`)}`);
    }
    return `{${parts.join(',')}}`;
  };
  try {
    return { kind: 'returned', json: encode(value, 1, 'the value') };
  } catch (error) {
    return { kind: 'unserializable', detail: `the function returned a value with no JSON form: ${(error as Error).message}` };
  }
}

/**
 * What a thrown value says: its message (error-reason) and its type and stack (error-exception);
 * a value marked as a retry request (the Retry class, Symbol.for('dothis.retry')) asks for another
 * try after its delayMs.
 */
export function describeError(error: unknown): CallResult {
  const record = (typeof error === 'object' && error !== null ? error : {}) as Record<string | symbol, unknown>;
  let text: string;
  try {
    text = typeof record.message === 'string' ? record.message : String(error);
  } catch {
    text = 'an error that cannot be shown';
  }
  if (record[Symbol.for('dothis.retry')] === true) {
    const delay = record.delayMs;
    return { kind: 'retry', reason: text || 'retry requested', delayMs: typeof delay === 'number' && delay >= 0 ? delay : null };
  }
  const name = typeof record.name === 'string' && record.name ? record.name : typeof error === 'object' ? 'Error' : typeof error;
  const stack = typeof record.stack === 'string' && record.stack ? record.stack : `${name}: ${text}`;
  return { kind: 'raised', reason: text || name, exception: stack };
}

/** A function's declared parameters (its `params` property): names, null without one, false when malformed. */
export function paramsOf(fn: unknown): string[] | null | false {
  const params = (fn as { params?: unknown }).params;
  if (params === undefined) return null;
  if (!Array.isArray(params)) return false;
  const names: string[] = [];
  for (const name of params as unknown[]) {
    if (typeof name !== 'string') return false;
    names.push(name);
  }
  return names;
}

/**
 * The task functions a module offers: its `functions` export when that is an object, else its
 * function exports (for a CommonJS module without named exports, those of module.exports).
 */
export function pickFunctions(mod: unknown): Record<string, (...args: unknown[]) => unknown> {
  const exports = (typeof mod === 'object' && mod !== null ? mod : {}) as Record<string, unknown>;
  const own = (source: Record<string, unknown>): [string, (...args: unknown[]) => unknown][] =>
    Object.entries(source).filter((pair): pair is [string, (...args: unknown[]) => unknown] =>
      pair[0] !== 'default' && typeof pair[1] === 'function');
  let found = typeof exports.functions === 'object' && exports.functions !== null
    ? own(exports.functions as Record<string, unknown>) : own(exports);
  if (found.length === 0 && typeof exports.default === 'object' && exports.default !== null) {
    const fallback = exports.default as Record<string, unknown>;
    found = typeof fallback.functions === 'object' && fallback.functions !== null
      ? own(fallback.functions as Record<string, unknown>) : own(fallback);
  }
  return Object.fromEntries(found);
}

/**
 * The schedules a module declares (its `schedules` export, or that of its default export), as
 * plain data: a schedule's `function` given as a function object is replaced by its name among
 * `functions` (else the function's own name), so the list can cross to another thread. Checked by
 * the worker (scheduler.ts); anything that is not an array is passed on as it is, to be reported.
 */
export function pickSchedules(mod: unknown, functions: Record<string, unknown>): unknown {
  const exports = (typeof mod === 'object' && mod !== null ? mod : {}) as Record<string, unknown>;
  const fallback = (typeof exports.default === 'object' && exports.default !== null ? exports.default : {}) as Record<string, unknown>;
  const declared = exports.schedules ?? fallback.schedules;
  if (!Array.isArray(declared)) return declared;
  const names = new Map(Object.entries(functions).map(([name, fn]) => [fn, name]));
  return declared.map((item: unknown) => {
    if (typeof item !== 'object' || item === null || typeof (item as { function?: unknown }).function !== 'function') return item;
    const fn = (item as { function: { name?: unknown } }).function;
    return { ...item, function: names.get(fn) ?? (typeof fn.name === 'string' && fn.name !== '' ? fn.name : null) };
  });
}

/** Calls `fn(args, ctx)`, awaits it and describes the outcome (never throws). */
export async function callFunction(fn: (...args: unknown[]) => unknown, args: unknown, ctx: unknown,
  maxDepth: number): Promise<CallResult> {
  let value: unknown;
  try {
    value = await fn(args, ctx);
  } catch (error) {
    return describeError(error);
  }
  return encodeValue(value, maxDepth);
}
