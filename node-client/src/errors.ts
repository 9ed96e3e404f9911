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
