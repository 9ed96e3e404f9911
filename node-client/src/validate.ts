/**
 * Input validation, all before anything is written to Redis: ids and queue names per the
 * protocol, args as strict JSON, then args and the task hash against schema/args.schema.json and
 * schema/task.schema.json (JSON Schema draft 2020-12, compiled once with ajv).
 */
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import ajvFormats from 'ajv-formats';

import { InvalidArgumentsError } from './errors.js';
import { ARGS_SCHEMA_ID, SCHEMAS, TASK_SCHEMA_ID } from './generated/schemas.js';
import { LIMITS } from './protocol.js';

/** A JSON value as it crosses the wire. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
/** Named arguments of a task: a JSON object. */
export type Args = Record<string, unknown>;

// Whitespace (Unicode White_Space), C0 controls and DEL, or a lone surrogate (not UTF-8 encodable).
const FORBIDDEN = /[\p{White_Space}\u0000-\u001f\u007f]|\p{Surrogate}/u; // eslint-disable-line no-control-regex
export const LONE_SURROGATE = /\p{Surrogate}/u;

function checkName(field: string, value: unknown, maxBytes: number): string {
  if (typeof value !== 'string') {
    throw new InvalidArgumentsError(field, `must be a string, got ${describe(value)}`);
  }
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes < 1 || bytes > maxBytes) {
    throw new InvalidArgumentsError(field, `must be 1 to ${maxBytes} bytes of UTF-8, got ${bytes}`);
  }
  const bad = FORBIDDEN.exec(value);
  if (bad) {
    const codePoint = bad[0].codePointAt(0) ?? 0;
    throw new InvalidArgumentsError(field,
      `must hold no whitespace or control characters, found U+${codePoint.toString(16).toUpperCase().padStart(4, '0')}` +
      ` at index ${bad.index}`);
  }
  return value;
}

/** A task id: 1..256 bytes of UTF-8, no whitespace, no control characters. */
export const checkId = (id: unknown, field = 'id'): string => checkName(field, id, LIMITS['id-max-bytes']);

/** A queue name: 1..128 bytes of UTF-8, no whitespace, no control characters. */
export const checkQueueName = (name: unknown): string => checkName('queue name', name, LIMITS['queue-max-bytes']);

/** A function name: a non-empty string (the task schema may constrain it further). */
export function checkFunctionName(fn: unknown, field = 'function'): string {
  if (typeof fn !== 'string' || fn === '') {
    throw new InvalidArgumentsError(field, `must be a non-empty string (a registered function name), got ${describe(fn)}`);
  }
  if (LONE_SURROGATE.test(fn)) {
    throw new InvalidArgumentsError(field, 'holds a lone surrogate (not encodable as UTF-8)');
  }
  return fn;
}

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') {
    const proto: unknown = Object.getPrototypeOf(value);
    const name = (proto as { constructor?: { name?: string } } | null)?.constructor?.name;
    return name && name !== 'Object' ? `an instance of ${name}` : 'an object';
  }
  if (typeof value === 'string') return `the string ${JSON.stringify(value.slice(0, 40))}`;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') {
    return `${typeof value} ${value.toString()}`;
  }
  return typeof value === 'undefined' ? 'undefined' : `a ${typeof value}`;
}

const pathOf = (base: string, key: string | number): string =>
  typeof key === 'number' ? `${base}[${key}]`
    : /^[A-Za-z_$][\w$]*$/.test(key) ? `${base}.${key}` : `${base}[${JSON.stringify(key)}]`;

function isPlainObject(value: object): boolean {
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * Checks that `value` has one exact JSON encoding: plain objects, arrays, strings, finite numbers,
 * booleans and null, at most json-max-depth containers deep. JSON.stringify would silently turn
 * NaN into null, drop undefined and call toJSON; this names the offending field instead.
 */
function checkJson(value: unknown, field: string, depth: number): void {
  switch (typeof value) {
    case 'boolean':
      return;
    case 'string':
      if (LONE_SURROGATE.test(value)) throw new InvalidArgumentsError(field, 'string holds a lone surrogate (not encodable as UTF-8)');
      return;
    case 'number':
      if (!Number.isFinite(value)) throw new InvalidArgumentsError(field, `${String(value)} is not JSON (only finite numbers are)`);
      return;
    case 'bigint':
      throw new InvalidArgumentsError(field, 'a BigInt is not JSON; pass a number or a string');
    case 'undefined':
      throw new InvalidArgumentsError(field, 'undefined is not JSON; omit the key or pass null');
    case 'function':
    case 'symbol':
      throw new InvalidArgumentsError(field, `a ${typeof value} is not JSON`);
    case 'object':
      break;
  }
  if (value === null) return;
  if (depth > LIMITS['json-max-depth']) {
    throw new InvalidArgumentsError(field, `nesting is deeper than ${LIMITS['json-max-depth']} levels`);
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i += 1) checkJson(value[i], pathOf(field, i), depth + 1);
    return;
  }
  if (!isPlainObject(value)) {
    throw new InvalidArgumentsError(field, `${describe(value)} is not a plain object and has no exact JSON form`);
  }
  for (const [key, item] of Object.entries(value)) {
    if (LONE_SURROGATE.test(key)) throw new InvalidArgumentsError(pathOf(field, key), 'key holds a lone surrogate');
    checkJson(item, pathOf(field, key), depth + 1);
  }
}

/**
 * Whether checkJson(value, field, depth) passes (args: depth 1), without naming fields: the check
 * of every args, whose paths are only worth building for an error (checkJson, run then, names it).
 */
export function isExactJson(value: unknown, depth = 1): boolean {
  switch (typeof value) {
    case 'boolean':
      return true;
    case 'string':
      return !LONE_SURROGATE.test(value);
    case 'number':
      return Number.isFinite(value);
    case 'object':
      break;
    default:
      return false;
  }
  if (value === null) return true;
  if (depth > LIMITS['json-max-depth']) return false;
  if (Array.isArray(value)) {
    for (const item of value) if (!isExactJson(item, depth + 1)) return false; // a hole is undefined: not JSON
    return true;
  }
  if (!isPlainObject(value)) return false;
  for (const key in value) { // the own enumerable keys, as Object.entries takes them
    if (!Object.hasOwn(value, key)) continue;
    if (LONE_SURROGATE.test(key) || !isExactJson((value as Record<string, unknown>)[key], depth + 1)) return false;
  }
  return true;
}

/** ajv-formats is CommonJS: its plugin is the default import, or that import's `default` (per module system). */
function addFormats(ajv: Ajv2020): void {
  let plugin: unknown = ajvFormats;
  if (typeof plugin !== 'function') plugin = (plugin as { default?: unknown }).default;
  if (typeof plugin !== 'function') throw new Error('ajv-formats did not load');
  (plugin as (instance: Ajv2020) => unknown)(ajv);
}

/**
 * The date-time format (the task hash's timestamps), remembering its last verdict: the tasks of one
 * enqueue call share their pending-created, which a check of each hash would otherwise parse anew.
 * A format is a function of the string alone: the verdict is the same.
 */
function rememberDateTime(ajv: Ajv2020): void {
  const format: unknown = ajv.formats['date-time'];
  const check = typeof format === 'function' ? format
    : (format as { validate?: unknown } | undefined)?.validate;
  if (typeof check !== 'function') return;
  const test = check as (value: string) => boolean;
  let last: string | undefined;
  let verdict = false;
  const remembered = (value: string): boolean => {
    if (value !== last) {
      verdict = test(value);
      last = value;
    }
    return verdict;
  };
  ajv.addFormat('date-time', typeof format === 'function' ? remembered : { ...(format as object), validate: remembered });
}

let validators: { args: ValidateFunction; task: ValidateFunction } | undefined;

function compiled(): { args: ValidateFunction; task: ValidateFunction } {
  if (!validators) {
    // strict: false is plain JSON Schema semantics (ajv's strict mode is an ajv-only lint).
    const ajv = new Ajv2020({ allErrors: false, strict: false, schemas: [...SCHEMAS] });
    addFormats(ajv);
    rememberDateTime(ajv);
    const get = (id: string): ValidateFunction => {
      const validate = ajv.getSchema(id);
      if (!validate) throw new Error(`schema ${id} is not bundled`);
      return validate;
    };
    validators = { args: get(ARGS_SCHEMA_ID), task: get(TASK_SCHEMA_ID) };
  }
  return validators;
}

function schemaField(base: string, error: ErrorObject): string {
  const parts = error.instancePath.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  const missing = (error.params as { missingProperty?: unknown }).missingProperty;
  if (typeof missing === 'string') parts.push(missing);
  return parts.reduce<string>((acc, part) => pathOf(acc, /^\d+$/.test(part) ? Number(part) : part), base);
}

function schemaProblem(error: ErrorObject): string {
  return `${error.message ?? 'is not valid'} (schema ${error.schemaPath})`;
}

/** The JSON text of the args serializeArgs passed last. */
let lastValidArgs: string | undefined;

/** Validates args (strict JSON, then args.schema.json) and returns their JSON text. */
export function serializeArgs(args: unknown): string {
  if (args === null || typeof args !== 'object' || Array.isArray(args)) {
    throw new InvalidArgumentsError('args', `must be an object of named arguments, got ${describe(args)}`);
  }
  if (!isExactJson(args, 1)) checkJson(args, 'args', 1);
  const json = JSON.stringify(args);
  // Of exact JSON, the schema judges what the text says: args with the text of the last valid ones are valid.
  if (json !== lastValidArgs) {
    const validate = compiled().args;
    if (!validate(args)) {
      const [error] = validate.errors ?? [];
      throw new InvalidArgumentsError(error ? schemaField('args', error) : 'args', error ? schemaProblem(error) : 'is not valid');
    }
    lastValidArgs = json;
  }
  return json;
}

/** serializeArgs(args) when it passes, else undefined (serializeArgs names what is wrong). */
export function validArgsJson(args: unknown): string | undefined {
  if (args === null || typeof args !== 'object' || Array.isArray(args) || !isExactJson(args)) return undefined;
  const json = JSON.stringify(args);
  if (json !== lastValidArgs) {
    if (!compiled().args(args)) return undefined;
    lastValidArgs = json;
  }
  return json;
}

/** Validates the hash enqueue is about to write against task.schema.json. */
export function checkTaskHash(hash: Record<string, string>): void {
  const validate = compiled().task;
  if (!validate(hash)) {
    const [error] = validate.errors ?? [];
    throw new InvalidArgumentsError(error ? schemaField('task', error) : 'task', error ? schemaProblem(error) : 'is not valid');
  }
}
