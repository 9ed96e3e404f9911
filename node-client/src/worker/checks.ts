/**
 * From the fields start.lua returned to a call ready to run, or the failure that ends the task
 * without running it: SPEC.md 8.1's order of checks from 7a on (start.lua did 1 to 7).
 */
import { PROTOCOL_VERSION } from '../protocol.js';
import { decodeUtf8, parseStrict, StrictJsonError } from './json.js';
import { argumentsProblem, type FunctionInfo } from './registry.js';

/** Why a task ends without success: an error code of SPEC.md 7.2, its reason and exception text. */
export interface Failure {
  code: string;
  reason: string;
  exception?: string;
}

/** A checked call: the function, its args and the task's try settings (as read at start). */
export interface Invocation {
  info: FunctionInfo;
  args: Record<string, unknown>;
  attempts: number;
  retries: number;
  /** The try's timeout in ms: the task's `timeout` field, else the worker's default; null: none. */
  timeoutMs: number | null;
}

const INTEGER = /^(?:0|[1-9][0-9]{0,8})$/;
const SECONDS = /^(?:0|[1-9][0-9]{0,8})(?:\.[0-9]{1,9})?$/;
/** The fields a worker decodes as UTF-8 (SPEC.md 3.1); invalid UTF-8 in any other field is ignored. */
const DECODED = ['function', 'args', 'protocol', 'attempts', 'retries', 'timeout'] as const;
type Decoded = Partial<Record<(typeof DECODED)[number], string>>;

/** 7a: a cancel-requested field, whatever its value, cancels the task before it runs. */
export function cancelRequested(fields: Map<string, Buffer>): Failure | null {
  return fields.has('cancel-requested') ? { code: 'cancelled', reason: 'cancelled before it started' } : null;
}

/** 7b: the task waited longer than its `ttl` (seconds since `pending-created`) to start. */
export function expired(fields: Map<string, Buffer>, nowMs: number): Failure | null {
  const ttl = fields.get('ttl')?.toString('latin1');
  const created = fields.get('pending-created')?.toString('latin1');
  // no ttl, or a malformed one ('0' included): no limit (SPEC.md 3.1, T-FIELD-6)
  if (ttl === undefined || created === undefined || !/^[1-9][0-9]{0,8}$/.test(ttl)) return null;
  const since = Date.parse(created);
  if (Number.isNaN(since)) return null;
  const waited = (nowMs - since) / 1000;
  if (waited <= Number(ttl)) return null;
  return { code: 'expired', reason: `waited ${waited.toFixed(1)} s to start; its ttl is ${Number(ttl)} s` };
}

function decodeFields(fields: Map<string, Buffer>): { decoded: Decoded } | { failure: Failure } {
  const decoded: Decoded = {};
  for (const name of DECODED) {
    const raw = fields.get(name);
    if (raw === undefined) continue;
    const text = decodeUtf8(raw);
    if (text === null) return { failure: { code: 'invalid-encoding', reason: `the ${name} field is not valid UTF-8` } };
    decoded[name] = text;
  }
  return { decoded };
}

type Tries = Pick<Invocation, 'attempts' | 'retries' | 'timeoutMs'>;

function settings(decoded: Decoded, defaultTimeoutMs: number | null): { tries: Tries } | { failure: Failure } {
  const { attempts = '1', retries = '0', timeout } = decoded;
  const invalid = (reason: string): { failure: Failure } => ({ failure: { code: 'invalid-field', reason } });
  if (!INTEGER.test(attempts) || attempts === '0') {
    return invalid(`attempts must be a positive integer, not ${JSON.stringify(attempts.slice(0, 32))}`);
  }
  if (!INTEGER.test(retries)) return invalid(`retries must be an integer, not ${JSON.stringify(retries.slice(0, 32))}`);
  if (timeout !== undefined && (!SECONDS.test(timeout) || Number(timeout) === 0)) {
    return invalid(`timeout must be a positive number of seconds, not ${JSON.stringify(timeout.slice(0, 32))}`);
  }
  const timeoutMs = timeout === undefined ? defaultTimeoutMs : Number(timeout) * 1000;
  return { tries: { attempts: Number(attempts), retries: Number(retries), timeoutMs } };
}

function parseArgs(text: string | undefined): { args: Record<string, unknown> } | { failure: Failure } {
  if (text === undefined) return { args: {} };
  let args: unknown;
  try {
    args = parseStrict(text);
  } catch (error) {
    if (!(error instanceof StrictJsonError)) throw error;
    return { failure: { code: 'malformed-args', reason: `args is not strict JSON: ${error.message}` } };
  }
  if (args === null || typeof args !== 'object' || Array.isArray(args)) {
    const kind = args === null ? 'null' : Array.isArray(args) ? 'an array' : `a ${typeof args}`;
    return { failure: { code: 'args-not-object', reason: `args must be a JSON object of named arguments, not ${kind}` } };
  }
  return { args: args as Record<string, unknown> };
}

/** Checks 8 to 14 of SPEC.md 8.1: the call, or the failure that ends the task. */
export function prepare(fields: Map<string, Buffer>, functions: ReadonlyMap<string, FunctionInfo>,
  defaultTimeoutMs: number | null): { invocation: Invocation } | { failure: Failure } {
  const decoded = decodeFields(fields);
  if ('failure' in decoded) return decoded;
  const text = decoded.decoded;
  if (text.protocol !== undefined && text.protocol !== String(PROTOCOL_VERSION)) {
    return { failure: { code: 'unsupported-protocol', reason: `the task asks for protocol ${JSON.stringify(text.protocol.slice(0, 32))}; this worker implements ${PROTOCOL_VERSION}` } };
  }
  const tries = settings(text, defaultTimeoutMs);
  if ('failure' in tries) return tries;
  if (!text.function) return { failure: { code: 'missing-function', reason: 'the task hash has no function field, or it is empty' } };
  const info = functions.get(text.function);
  if (!info) {
    const names = [...functions.keys()].join(', ') || 'none';
    const reason = `no function named ${JSON.stringify(text.function.slice(0, 256))} is registered with this worker (registered: ${names})`;
    return { failure: { code: 'unknown-function', reason } };
  }
  const parsed = parseArgs(text.args);
  if ('failure' in parsed) return parsed;
  const problem = argumentsProblem(info, parsed.args);
  if (problem !== null) return { failure: { code: 'bad-arguments', reason: problem } };
  return { invocation: { info, args: parsed.args, ...tries.tries } };
}
