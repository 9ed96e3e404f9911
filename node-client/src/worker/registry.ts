/**
 * The functions a worker serves, by name, and the bad-arguments rule (SPEC.md 8.1 check 14).
 *
 * JavaScript has no signature to bind named arguments to, so a function declares its parameters
 * itself, with a `params` property: a list of names, where `name?` is optional and `'...'` lets
 * any other name through. With `params`, args missing a required name or holding a name not in
 * the list fail the task with `bad-arguments` before it runs. Without `params` every args object
 * is accepted: the function receives it as it is.
 */
import { InvalidArgumentsError } from '../errors.js';
import { paramsOf } from './callable.js';

/** Context a task function receives as its second argument. */
export interface TaskContext {
  /** The task id. */
  readonly id: string;
  readonly queue: string;
  /** The function name the task asked for. */
  readonly function: string;
  /** 1 for the first try, then 2, ... */
  readonly tryNumber: number;
  /** Total tries the task allows. */
  readonly attempts: number;
  readonly workerId: string;
  /** The claims value of this try (the fencing token, SPEC.md 5.3). */
  readonly claims: number;
  /** Aborted when the worker stops this try (timeout, cancel, shutdown) and the function still runs. */
  readonly signal: AbortSignal;
  /**
   * Reports progress (SPEC.md 5.16): `fraction` from 0 to 1, an optional message. Resolves true when
   * written, false when the try no longer holds the task. Report at most a few times a second.
   */
  progress(fraction: number, message?: string): Promise<boolean>;
}

/** A task function: receives the named arguments (a plain object) and returns a JSON value or a Promise of one. */
export type TaskFunction = ((args: Record<string, unknown>, ctx: TaskContext) => unknown) & { params?: readonly string[] };

/** Declares a function's parameters (see the module comment); returns the function itself. */
export function withParams<F extends (args: Record<string, unknown>, ctx: TaskContext) => unknown>(
  params: readonly string[], fn: F): F & { params: readonly string[] } {
  return Object.assign(fn, { params });
}

/** A function as the registry knows it: its name and declared parameters (null: any args). */
export interface FunctionInfo {
  name: string;
  params: string[] | null;
}

/** Checks a `params` list; throws InvalidArgumentsError naming the function when it is malformed. */
export function checkParams(name: string, params: unknown): string[] | null {
  if (params === null) return null;
  if (params === false || !Array.isArray(params)) {
    throw new InvalidArgumentsError(`functions.${name}.params`, 'must be an array of parameter names (name? for an optional one, ... for any other)');
  }
  for (const param of params as unknown[]) {
    if (typeof param !== 'string' || (param !== '...' && !/^[^?]+\??$/.test(param))) {
      throw new InvalidArgumentsError(`functions.${name}.params`, `holds ${JSON.stringify(param)}: a name, name? or ...`);
    }
  }
  return params as string[];
}

/** The registry entries of an object of functions (the inline pool's `functions` option). */
export function describeFunctions(functions: Record<string, unknown>): FunctionInfo[] {
  return Object.entries(functions).map(([name, fn]) => {
    if (typeof fn !== 'function') throw new InvalidArgumentsError(`functions.${name}`, 'must be a function');
    return { name, params: checkParams(name, paramsOf(fn)) };
  });
}

/** Why `args` do not fit the parameters of `info`, or null when they do. */
export function argumentsProblem(info: FunctionInfo, args: Record<string, unknown>): string | null {
  const params = info.params;
  if (params === null) return null;
  const known = new Set<string>();
  const missing: string[] = [];
  for (const param of params) {
    if (param === '...') continue;
    const name = param.endsWith('?') ? param.slice(0, -1) : param;
    known.add(name);
    if (!param.endsWith('?') && !Object.hasOwn(args, name)) missing.push(name);
  }
  const unexpected = params.includes('...') ? [] : Object.keys(args).filter((name) => !known.has(name));
  if (missing.length === 0 && unexpected.length === 0) return null;
  const parts = [
    ...(missing.length ? [`missing ${missing.map((n) => JSON.stringify(n)).join(', ')}`] : []),
    ...(unexpected.length ? [`unexpected ${unexpected.slice(0, 10).map((n) => JSON.stringify(n.slice(0, 64))).join(', ')}`] : []),
  ];
  return `args do not fit ${info.name}(${params.join(', ')}): ${parts.join('; ')}`;
}
