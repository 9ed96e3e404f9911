import { createHash } from 'node:crypto';

import { SCRIPTS } from './generated/scripts.js';

/**
 * Every error this package throws is a DothisError; `code` is a stable, machine-readable string.
 * TaskFailedError carries the error code the worker wrote to the task hash (schema/protocol.json).
 */
export class DothisError extends Error {
  readonly code: string;

  constructor(message: string, code = 'dothis-error', options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** Redis could not be reached (or the connection dropped while a command was in flight). */
export class ConnectionFailedError extends DothisError {
  readonly url: string;

  /** `message` replaces the default one (subclasses pass theirs). */
  constructor(url: string, detail: string, options?: ErrorOptions,
    message = `cannot reach Redis at ${url}: is redis-server running? set DOTHIS_REDIS_URL (${detail})`) {
    super(message, 'connection-failed', options);
    this.url = url;
  }
}

/** How to give Redis a password; the part every AuthenticationFailedError message ends with. */
const PASSWORD_FIX = 'put the password in the URL, redis://:PASSWORD@host:6379/0 (or redis://USER:PASSWORD@host:6379/0 ' +
  'for an ACL user), or set DOTHIS_REDIS_URL';

/**
 * Redis asks for a password and none was given (NOAUTH), or refused the password or user given
 * (WRONGPASS). `passwordGiven` tells which. The message names the fix and never the password.
 */
export class AuthenticationFailedError extends ConnectionFailedError {
  override readonly code: string = 'authentication-failed';
  readonly passwordGiven: boolean;

  constructor(url: string, passwordGiven: boolean, detail: string, options?: ErrorOptions) {
    const cause = passwordGiven
      ? `Redis at ${url} refused the password (or user) in the URL`
      : `Redis at ${url} requires a password and none was given`;
    super(url, detail, options, `${cause}: ${PASSWORD_FIX} (${detail})`);
    this.passwordGiven = passwordGiven;
  }
}

/**
 * The Redis URL cannot be parsed, or names a database the server does not have. `url` is the URL
 * with any password masked; `problem` says what is wrong with it.
 */
export class InvalidUrlError extends DothisError {
  readonly url: string;
  readonly problem: string;

  constructor(url: string, problem: string, options?: ErrorOptions) {
    super(`invalid Redis URL ${url}: ${problem}`, 'invalid-url', options);
    this.url = url;
    this.problem = problem;
  }
}

/** The Queue was closed; it cannot be used any more. */
export class QueueClosedError extends DothisError {
  constructor(queue: string) {
    super(`queue ${JSON.stringify(queue)} is closed`, 'queue-closed');
  }
}

/** A function name, argument, id, queue name or option is not valid; `field` names it. */
export class InvalidArgumentsError extends DothisError {
  readonly field: string;
  /** What is wrong with the field. */
  readonly problem: string;

  constructor(field: string, problem: string) {
    super(`invalid ${field}: ${problem}`, 'invalid-arguments');
    this.field = field;
    this.problem = problem;
  }
}

/**
 * A task with this id already exists; nothing was written for it. From enqueueMany, `ids` lists
 * every id that existed and `enqueuedIds` the tasks of the batch that were enqueued all the same.
 */
export class TaskExistsError extends DothisError {
  readonly id: string;
  readonly ids: readonly string[];
  readonly enqueuedIds: readonly string[];

  constructor(ids: readonly [string, ...string[]], enqueuedIds: readonly string[] = []) {
    const [id] = ids;
    const message = ids.length === 1 && enqueuedIds.length === 0
      ? `task ${JSON.stringify(id)} already exists`
      : `${ids.length} task id(s) already exist and were not enqueued (${ids.slice(0, 5).map((i) => JSON.stringify(i)).join(', ')}` +
        `${ids.length > 5 ? ', ...' : ''}); the other ${enqueuedIds.length} task(s) were enqueued`;
    super(message, 'task-exists');
    this.id = id;
    this.ids = ids;
    this.enqueuedIds = enqueuedIds;
  }
}

/** wait() gave up before the task finished. The task itself is untouched and may still run. */
export class WaitTimeoutError extends DothisError {
  readonly id: string;
  readonly timeout: number;

  constructor(id: string, timeout: number, what = 'did not finish') {
    super(`task ${JSON.stringify(id)} ${what} within ${timeout} ms`, 'wait-timeout');
    this.id = id;
    this.timeout = timeout;
  }
}

/** The task finished with outcome "failed". `code` is the hash's error-code. */
export class TaskFailedError extends DothisError {
  readonly id: string;
  readonly reason: string;
  readonly exception: string;

  constructor(id: string, code: string, reason: string, exception: string) {
    super(`task ${JSON.stringify(id)} failed (${code}): ${reason}`, code);
    this.id = id;
    this.reason = reason;
    this.exception = exception;
  }
}

/**
 * A parent named in `dependsOn` cannot be depended on; nothing was written. `reason` is
 * 'parent-failed' (code dependency-failed: the parent finished without success, so the task could
 * never run) or 'parent-missing' (code dependency-missing: no task hash with that id exists).
 * `parentId` names the parent when it could be identified. From enqueueMany, `ids` lists every
 * task refused for its parents and `enqueuedIds` the tasks of the batch that were enqueued.
 */
export class DependencyError extends DothisError {
  readonly id: string;
  readonly reason: 'parent-failed' | 'parent-missing';
  readonly parentId: string | null;
  readonly ids: readonly string[];
  readonly enqueuedIds: readonly string[];

  constructor(
    id: string,
    reason: 'parent-failed' | 'parent-missing',
    parentId: string | null,
    ids: readonly string[] = [id],
    enqueuedIds: readonly string[] = [],
  ) {
    const parent = parentId === null ? 'a parent' : `parent ${JSON.stringify(parentId)}`;
    const what = reason === 'parent-failed'
      ? `${parent} finished without success, so it can never run`
      : `${parent} does not exist in this queue`;
    const batch = ids.length > 1 || enqueuedIds.length > 0
      ? `; ${ids.length} task(s) of the batch were refused for their parents, ${enqueuedIds.length} were enqueued`
      : '';
    super(`task ${JSON.stringify(id)} was not enqueued: ${what}${batch}`,
      reason === 'parent-failed' ? 'dependency-failed' : 'dependency-missing');
    this.id = id;
    this.reason = reason;
    this.parentId = parentId;
    this.ids = ids;
    this.enqueuedIds = enqueuedIds;
  }
}

/** No task hash with this id exists (cancel of an unknown id). */
export class TaskNotFoundError extends DothisError {
  readonly id: string;

  constructor(id: string, queue: string) {
    super(`no task ${JSON.stringify(id)} in queue ${JSON.stringify(queue)}`, 'task-not-found');
    this.id = id;
  }
}

/**
 * The task hash says successful but its result-value is missing or not JSON: something other than
 * a worker of this protocol wrote it, and the outcome cannot be read.
 */
export class MalformedResultError extends DothisError {
  readonly id: string;

  constructor(id: string, problem: string, options?: ErrorOptions) {
    super(`task ${JSON.stringify(id)} ${problem}: find what wrote its hash (a worker of another version, a script?)`,
      'malformed-result', options);
    this.id = id;
  }
}

/**
 * The Redis ACL user may not run a command, or use a key or a channel, that the operation needs
 * (NOPERM). `command` is the command refused (lower case) when known; `rules` are the ACL rules to
 * add (`+evalsha`, `~{emails}:task:*`, `&{emails}:results`). `dothis acl` prints every rule of a role.
 */
export class PermissionDeniedError extends DothisError {
  readonly command: string | null;
  readonly rules: readonly string[];

  constructor(message: string, command: string | null, rules: readonly string[], options?: ErrorOptions) {
    super(message, 'permission-denied', options);
    this.command = command;
    this.rules = rules;
  }
}

const ACL_FIX = 'or create the user with the line `dothis acl --role ROLE --queue QUEUE` prints';
// Redis 7's replies to a command, key or channel the user may not use: at the top level (NOPERM)
// and inside a script (ERR ..., naming the script's line).
const REFUSALS: readonly (readonly ['command' | 'key' | 'channel', RegExp])[] = [
  ['command', /no permissions to run the '([^']+)' command/],
  ['key', /no permissions to access one of the keys/],
  ['channel', /no permissions to access one of the channels/],
  ['command', /script can't run this command or subcommand/],
  ['key', /script can't access at least one of the keys/],
  ['channel', /script can't publish to the channel/],
];
// The keys of a queue whose name ends in a fixed suffix, then those that end in an id.
const FIXED_SUFFIXES = [':pending', ':executing', ':rejected', ':scheduled', ':failed', ':succeeded', ':releasing',
  ':periodic', ':workers', ':waiting'];
const VARIABLE_PARTS = [':task:', ':dependents:', ':worker:'];

/** `text` as a literal inside a Redis glob pattern. */
export function globEscape(text: string): string {
  return text.replace(/([*?[\]\\])/g, '\\$1');
}

/** The rule that allows `key`: `~<queue>:pending`, `~<queue>:task:*`, else the key itself. */
export function keyRule(key: string): string {
  const fixed = FIXED_SUFFIXES.find((suffix) => key.endsWith(suffix) && key.length > suffix.length);
  if (fixed) return `~${globEscape(key.slice(0, -fixed.length))}${fixed}`;
  for (const part of VARIABLE_PARTS) {
    const at = key.lastIndexOf(part);
    if (at > 0) return `~${globEscape(key.slice(0, at))}${part}*`;
  }
  return `~${globEscape(key)}`;
}

/** The keys of an ioredis command: EVAL/EVALSHA's KEYS, else the first argument (both of a LMOVE). */
function commandKeys(name: string, args: readonly unknown[]): string[] {
  const text = args.map((arg) => (Buffer.isBuffer(arg) ? arg.toString('utf8') : String(arg)));
  if (name === 'eval' || name === 'evalsha') return text.slice(2, 2 + Number(text[1] ?? 0));
  if (name === 'lmove' || name === 'blmove') return text.slice(0, 2);
  return text.slice(0, 1);
}

/** The protocol script an EVAL (its text) or EVALSHA (its SHA1) ran, by name. */
function scriptOf(name: string, args: readonly unknown[]): string | undefined {
  const first = typeof args[0] === 'string' ? args[0] : Buffer.isBuffer(args[0]) ? args[0].toString('utf8') : '';
  const entries = Object.entries(SCRIPTS) as [string, string][];
  if (name === 'eval') return entries.find(([, lua]) => lua === first)?.[0];
  if (name !== 'evalsha') return undefined;
  return entries.find(([, lua]) => createHash('sha1').update(lua).digest('hex') === first)?.[0];
}

/** The command on the line of `script` that a refusal inside it names (`@user_script:N`). */
function scriptCommand(script: string | undefined, message: string): string | null {
  const line = /@user_script:(\d+)/.exec(message)?.[1];
  const lua = script ? (SCRIPTS as Record<string, string>)[script] : undefined;
  if (!line || !lua) return null;
  const call = /redis\.p?call\(\s*['"]([A-Za-z]+)['"]/.exec(lua.split('\n')[Number(line) - 1] ?? '');
  return call?.[1]?.toLowerCase() ?? null;
}

/**
 * The PermissionDeniedError a user should see for a refusal of Redis's ACL, or null when `error` is
 * none. It reads the command ioredis attaches to a reply error (`error.command`: name and args) to
 * name the key or channel rule; `script` names the protocol script a refused EVALSHA ran.
 */
export function explainNoPerm(error: unknown, script?: string): PermissionDeniedError | null {
  if (!(error instanceof Error) || error instanceof PermissionDeniedError) return null;
  const found = REFUSALS.map(([kind, pattern]) => [kind, pattern.exec(error.message)] as const)
    .find(([, match]) => match !== null);
  if (!found) return null;
  const [kind, match] = found;
  const sent = (error as { command?: { name?: string; args?: unknown[] } }).command;
  const name = (sent?.name ?? '').toLowerCase();
  script ??= scriptOf(name, sent?.args ?? []);
  const where = script ? ` in ${script}.lua` : '';
  const shown = name ? name.toUpperCase() : 'a command';
  const options = { cause: error };
  if (kind === 'command') {
    const command = match?.[1]?.toLowerCase() ?? scriptCommand(script, error.message);
    const rules = command ? [`+${command}`] : [];
    const what = command ? `the command ${command.toUpperCase()}` : `a command run by ${shown}`;
    const rule = rules.length ? `add the rule ${rules.join(' ')}` : 'add the commands the script runs';
    return new PermissionDeniedError(`Redis refused ${what}${where} to this user (ACL): ${rule}, ${ACL_FIX}`,
      command, rules, options);
  }
  const keys = commandKeys(name, sent?.args ?? []);
  // take.lua also touches the task hashes it builds from its queue's prefix (SPEC.md 5.18)
  if (script === 'take' && keys[0]?.endsWith(':pending')) keys.push(`${keys[0].slice(0, -'pending'.length)}task:`);
  if (kind === 'channel') {
    const task = keys.find((key) => key.lastIndexOf(':task:') > 0);
    const queue = task ? globEscape(task.slice(0, task.lastIndexOf(':task:'))) : '<queue>';
    const rules = name === 'subscribe' ? keys.map((channel) => `&${globEscape(channel)}`)
      : [`&${queue}:${script === 'progress' ? 'progress' : 'results'}`];
    return new PermissionDeniedError(`Redis refused a channel of ${shown}${where} to this user (ACL): add the rule ` +
      `${rules.join(' ')}, ${ACL_FIX}`, name || null, rules, options);
  }
  const rules = [...new Set(keys.map(keyRule))];
  const one = keys.length ? ` (one of ${keys.join(', ')})` : '';
  const rule = rules.length ? `add the rule${rules.length > 1 ? 's' : ''} ${rules.join(' ')}` : 'add the key patterns of the queue';
  return new PermissionDeniedError(`Redis refused a key of ${shown}${where}${one} to this user (ACL): ${rule}, ${ACL_FIX}`,
    name || null, rules, options);
}
