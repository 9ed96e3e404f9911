/**
 * One ioredis connection with fail-fast semantics. Commands are never queued while Redis is
 * unreachable (enableOfflineQueue: false, maxRetriesPerRequest: 1); each call first waits for the
 * connection to be ready, at most connectTimeout ms or until the next failed attempt, and otherwise
 * rejects with a ConnectionFailedError that names the URL. ioredis keeps reconnecting in the
 * background (backoff capped at 1 s), so a Queue recovers when Redis comes back, and a subscriber
 * connection resubscribes.
 *
 * A refused login (NOAUTH, WRONGPASS) or a database the server does not have (SELECT: "DB index is
 * out of range") is not a network problem: retrying cannot fix it. The first such reply rejects the
 * waiting calls with AuthenticationFailedError or InvalidUrlError and stops the background
 * reconnecting (ioredis would otherwise log in again every second, or, for SELECT, carry on as
 * ready on database 0). The next call connects once more and fails the same way, promptly, unless
 * the server was changed in between.
 */
import { Redis, ReplyError } from 'ioredis';

import { AuthenticationFailedError, ConnectionFailedError, InvalidUrlError, type DothisError } from './errors.js';

export const DEFAULT_URL = 'redis://127.0.0.1:6379/0';
const RETRY_CAP_MS = 1000;
const URL_FORM = 'write it as redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] (rediss:// for TLS), e.g. ' +
  'redis://127.0.0.1:6379/0, in the url option or DOTHIS_REDIS_URL';

/** Redis replies that mean "no password was given": NOAUTH, or RESP's guard for large unauthenticated commands. */
const PASSWORD_MISSING = /\bNOAUTH\b|Protocol error: unauthenticated/i;
/** Redis replies that mean "the password or user was refused" (WRONGPASS; "invalid password" before Redis 6). */
const PASSWORD_REFUSED = /\bWRONGPASS\b|invalid username-password pair|\binvalid password\b/i;
/** SELECT of a database the server does not have. */
const NO_SUCH_DATABASE = /DB index is out of range/i;

/**
 * The URL with any password masked, for messages; also for a URL that cannot be parsed. Everything
 * between "//" and the last "@" after the user name is masked, so is a user name without a password.
 */
export function redactUrl(url: string): string {
  const at = url.lastIndexOf('@');
  if (at === -1) return url;
  const slashes = url.indexOf('//');
  const start = slashes !== -1 && slashes < at ? slashes + 2 : (/^[a-z][a-z0-9+.-]*:/i.exec(url)?.[0].length ?? 0);
  const userinfo = url.slice(start, at);
  const colon = userinfo.indexOf(':');
  const masked = colon === -1 ? '****' : `${userinfo.slice(0, colon)}:****`;
  return `${url.slice(0, start)}${masked}${url.slice(at)}`;
}

/** The database a redis:// URL names; throws InvalidUrlError when the URL cannot be used. */
export function checkRedisUrl(url: unknown): number {
  if (typeof url !== 'string') {
    throw new InvalidUrlError(String(url), `the URL must be a string, got ${typeof url}; ${URL_FORM}`);
  }
  const shown = redactUrl(url);
  if (!/^rediss?:\/\//i.test(url)) {
    throw new InvalidUrlError(shown, `it does not start with redis:// or rediss://; ${URL_FORM}`);
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (error) {
    throw new InvalidUrlError(shown, `it cannot be parsed (a bad port, or a password with "/", "?" or "#" not ` +
      `percent-encoded?); ${URL_FORM}`, { cause: error });
  }
  const path = parsed.pathname;
  if (path === '' || path === '/') return 0;
  const db = /^\/(\d{1,9})$/.exec(path)?.[1];
  if (db === undefined) {
    throw new InvalidUrlError(shown, `its path must be a database number such as /0; ${URL_FORM}`);
  }
  return Number(db);
}

/** Whether a Redis error means the URL's password, user or database is wrong (retrying cannot help). */
function isSetupError(message: string): boolean {
  return PASSWORD_MISSING.test(message) || PASSWORD_REFUSED.test(message) || NO_SUCH_DATABASE.test(message);
}

export interface LinkOptions {
  url: string;
  connectTimeout: number;
  connectionName: string;
}

export class Link {
  readonly redis: Redis;
  readonly url: string;
  private readonly connectTimeout: number;
  private readonly db: number;
  private lastError: Error | undefined;
  /** The reply that refused the login or the database, until the next call tries again. */
  private setupError: Error | undefined;

  /** Throws InvalidUrlError when the URL cannot be used. */
  constructor(options: LinkOptions) {
    this.db = checkRedisUrl(options.url);
    this.url = redactUrl(options.url);
    this.connectTimeout = options.connectTimeout;
    this.redis = new Redis(options.url, {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      connectTimeout: options.connectTimeout,
      connectionName: options.connectionName,
      enableAutoPipelining: true,
      retryStrategy: (times: number) => Math.min(times * 100, RETRY_CAP_MS),
    });
    // A listener keeps ioredis from printing "Unhandled error event"; errors surface per call.
    this.redis.on('error', (error: Error) => {
      this.lastError = error;
      if (isSetupError(error.message) && !this.setupError) {
        this.setupError = error;
        this.redis.disconnect(); // no reconnecting: the same reply would come back every second
      }
    });
  }

  /**
   * Resolves with the client once it is ready; rejects with ConnectionFailedError otherwise, or with
   * AuthenticationFailedError or InvalidUrlError when Redis refused the login or the database.
   */
  async ready(): Promise<Redis> {
    const redis = this.redis;
    let again = false;
    if (this.setupError) {
      // Until the refused connection has ended, it must not be used (after a failed SELECT it is on db 0).
      if (redis.status !== 'end') throw this.translate(this.setupError);
      this.setupError = undefined;
      again = true;
    }
    if (redis.status === 'ready') return redis;
    if (redis.status === 'end' && !again) {
      throw this.failure(this.lastError ? this.lastError.message : 'the connection was closed');
    }
    const outcome = new Promise<Redis>((resolve, reject) => {
      const settle = (error?: Error): void => {
        clearTimeout(timer);
        redis.off('ready', onReady);
        redis.off('error', onError);
        redis.off('end', onEnd);
        if (error) reject(error);
        else resolve(redis);
      };
      const onReady = (): void => { settle(); };
      const onError = (error: Error): void => { settle(this.translate(error)); };
      const onEnd = (): void => { settle(this.failure(this.lastError?.message ?? 'the connection was closed')); };
      const timer = setTimeout(() => {
        settle(this.failure(`no connection within ${this.connectTimeout} ms`));
      }, this.connectTimeout);
      redis.on('ready', onReady);
      redis.on('error', onError);
      redis.on('end', onEnd);
    });
    if (redis.status === 'wait' || redis.status === 'end') {
      redis.connect().catch(() => undefined); // the outcome arrives through the events
    }
    return outcome;
  }

  /**
   * Runs `command` on the ready client, turning connection failures into ConnectionFailedError and
   * refused logins into AuthenticationFailedError; other Redis error replies are thrown as they are.
   */
  async run<T>(command: (redis: Redis) => Promise<T>): Promise<T> {
    const redis = await this.ready();
    try {
      return await command(redis);
    } catch (error) {
      if (error instanceof ReplyError && !isSetupError((error as Error).message)) throw error;
      throw this.translate(error);
    }
  }

  /** Closes the connection: QUIT after in-flight replies when connected, else stop reconnecting. */
  async close(): Promise<void> {
    const redis = this.redis;
    if (redis.status === 'ready') {
      try {
        await redis.quit();
        return;
      } catch {
        // fall through: the connection is already broken
      }
    }
    redis.disconnect();
  }

  /** The DothisError for an error of ioredis: a refused login, a missing database, else an unreachable server. */
  private translate(error: unknown): DothisError {
    const message = error instanceof Error ? error.message : String(error);
    const options = { cause: error };
    if (PASSWORD_MISSING.test(message)) {
      // NOAUTH's text depends on the command refused (HELLO: a paragraph about HELLO AUTH); the code says it all.
      return new AuthenticationFailedError(this.url, false, /\bNOAUTH\b/.test(message) ? 'NOAUTH' : message, options);
    }
    if (PASSWORD_REFUSED.test(message)) return new AuthenticationFailedError(this.url, true, message, options);
    if (NO_SUCH_DATABASE.test(message)) {
      return new InvalidUrlError(this.url, `database ${this.db} does not exist on this server (a server has databases 0 ` +
        `to N-1, N being its \`databases\` config, 16 by default); end the URL with an existing one, e.g. /0, or set ` +
        `DOTHIS_REDIS_URL (${message})`, options);
    }
    return this.failure(message, error);
  }

  private failure(detail: string, cause?: unknown): ConnectionFailedError {
    return new ConnectionFailedError(this.url, detail, cause === undefined ? undefined : { cause });
  }
}
