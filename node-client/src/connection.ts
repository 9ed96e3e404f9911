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
import { readFileSync } from 'node:fs';

import { Cluster, Redis, ReplyError, type RedisOptions } from 'ioredis';

import {
  AuthenticationFailedError, ConnectionFailedError, InvalidArgumentsError, InvalidUrlError, explainNoPerm, type DothisError,
} from './errors.js';
import type { ConnectionOptions } from './options.js';

export const DEFAULT_URL = 'redis://127.0.0.1:6379/0';
const RETRY_CAP_MS = 1000;
const URL_FORM = 'write it as redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] (rediss:// for TLS), e.g. ' +
  'redis://127.0.0.1:6379/0, in the url option or DOTHIS_REDIS_URL';

/** Redis replies that mean "no password was given": NOAUTH, or RESP's guard for large unauthenticated commands. */
const PASSWORD_MISSING = /\bNOAUTH\b|Protocol error: unauthenticated/i;
/** Redis replies that mean "the password or user was refused" (WRONGPASS; "invalid password" before Redis 6). */
const PASSWORD_REFUSED = /\bWRONGPASS\b|invalid username-password pair|\binvalid password\b/i;
/** A server certificate that no trusted CA signed (Node's messages and codes). */
const TLS_UNTRUSTED = /unable to (?:verify|get local issuer)|self[- ]signed certificate|certificate verify failed/i;
const TLS_CODES = new Set(['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'ERR_TLS_CERT_ALTNAME_INVALID', 'CERT_HAS_EXPIRED']);
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
  if (/^rediss?\+sentinel:/i.test(url)) return parseTarget(url, shown).db;
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

// -- Where a URL leads (docs/topology.md): one server, Sentinel's primary, or a Redis Cluster ------
//
// The URL forms and variables are the Python package's: rediss://...?tls_ca=FILE&tls_cert=FILE&tls_key=FILE;
// redis+sentinel://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT...]/SERVICE[/DB] (rediss+sentinel for TLS);
// ?cluster=1 on any node's URL; DOTHIS_TLS_CA, DOTHIS_TLS_CERT, DOTHIS_TLS_KEY, DOTHIS_CLUSTER.

interface Node { host: string; port: number }

interface Target {
  /** The URL ioredis reads for a single server or a cluster node (dothis's parameters taken out). */
  url: string;
  tls: Record<string, unknown> | undefined;
  cluster: readonly Node[] | undefined;
  sentinels: readonly Node[] | undefined;
  service: string;
  db: number;
  username: string | undefined;
  password: string | undefined;
}

const TLS_PARAMETERS = [['tls_ca', 'DOTHIS_TLS_CA', 'ca'], ['tls_cert', 'DOTHIS_TLS_CERT', 'cert'],
  ['tls_key', 'DOTHIS_TLS_KEY', 'key']] as const;
const SENTINEL = /^(rediss?)\+sentinel:\/\/(?:([^@/]*)@)?([^/?#]+)\/([^/?#]+)(?:\/(\d{1,9}))?\/?(?:\?([^#]*))?$/i;
const SENTINEL_FORM = 'write it as redis+sentinel://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT...]/SERVICE[/DB], e.g. ' +
  'redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster/0';
const TRUE = new Set(['1', 'true', 'yes', 'on']);

/** A PEM given as a path is read; contents (a Buffer, or text holding "-----BEGIN") are kept. */
function pem(value: unknown): unknown {
  return typeof value === 'string' && !value.includes('-----BEGIN') ? readFileSync(value) : value;
}

function splitQuery(query: string): { ours: Map<string, string>; rest: string } {
  const params = new URLSearchParams(query);
  const ours = new Map<string, string>();
  for (const name of ['tls_ca', 'tls_cert', 'tls_key', 'cluster']) {
    const value = params.get(name);
    if (value !== null) ours.set(name, value);
    params.delete(name);
  }
  return { ours, rest: params.toString() };
}

function tlsOf(ours: Map<string, string>, given: ConnectionOptions['tls'], secure: boolean, shown: string): Target['tls'] {
  const settings: Record<string, unknown> = {};
  for (const [parameter, variable, option] of TLS_PARAMETERS) {
    const value = ours.get(parameter) ?? process.env[variable];
    if (value) settings[option] = value;
  }
  const fromUrl = TLS_PARAMETERS.some(([parameter]) => ours.has(parameter));
  if (!secure) {
    if (fromUrl || given) {
      throw new InvalidUrlError(shown, 'TLS settings are given for a URL that does not use TLS: write it as rediss://HOST:PORT/DB');
    }
    return undefined;
  }
  const merged: Record<string, unknown> = { ...settings, ...(given ?? {}) };
  for (const option of ['ca', 'cert', 'key']) {
    if (merged[option] !== undefined) merged[option] = pem(merged[option]);
  }
  return merged;
}

function nodes(list: string, shown: string): Node[] {
  return list.split(',').map((item) => {
    const match = /^(?:\[([^\]]+)\]|([^:[\]\s/]+))(?::(\d{1,5}))?$/.exec(item.trim());
    const host = match?.[1] ?? match?.[2];
    if (!match || !host) throw new InvalidUrlError(shown, `invalid sentinel address ${JSON.stringify(item)}; ${SENTINEL_FORM}`);
    return { host, port: match[3] ? Number(match[3]) : 26379 };
  });
}

function sentinelTarget(url: string, shown: string, options: ConnectionOptions): Target {
  const match = SENTINEL.exec(url);
  if (!match) throw new InvalidUrlError(shown, SENTINEL_FORM);
  const [, scheme = 'redis', userinfo, hosts = '', service = '', db, query = ''] = match;
  const { ours, rest } = splitQuery(query);
  if (options.cluster || TRUE.has((ours.get('cluster') ?? '').toLowerCase())) {
    throw new InvalidUrlError(shown, 'Sentinel and Redis Cluster together: a cluster is reached through any of its nodes\' URLs');
  }
  const [user, ...secret] = (userinfo ?? '').split(':');
  return {
    url: `${scheme}://127.0.0.1/${db ?? '0'}${rest ? `?${rest}` : ''}`,
    tls: tlsOf(ours, options.tls, scheme.toLowerCase() === 'rediss', shown),
    cluster: undefined,
    sentinels: nodes(hosts, shown),
    service: decodeURIComponent(service),
    db: Number(db ?? '0'),
    username: user ? decodeURIComponent(user) : undefined,
    password: secret.length ? decodeURIComponent(secret.join(':')) : undefined,
  };
}

/** The target of `url` with `options`; throws InvalidUrlError when they cannot be used together. */
export function parseTarget(url: string, shown: string, options: ConnectionOptions = {}): Target {
  if (/^rediss?\+sentinel:/i.test(url)) return sentinelTarget(url, shown, options);
  const at = url.indexOf('?');
  const { ours, rest } = splitQuery(at === -1 ? '' : url.slice(at + 1));
  const base = at === -1 ? url : url.slice(0, at);
  const flag = ours.get('cluster') ?? process.env.DOTHIS_CLUSTER ?? '';
  const wanted: ConnectionOptions['cluster'] = options.cluster ?? TRUE.has(flag.trim().toLowerCase());
  let cluster: Node[] | undefined;
  if (typeof wanted === 'object') cluster = wanted.map((node): Node => ({ host: node.host, port: node.port }));
  else if (wanted) {
    const parsed = new URL(base);
    cluster = [{ host: parsed.hostname.replace(/^\[|\]$/g, ''), port: Number(parsed.port || 6379) }];
  }
  return {
    url: rest ? `${base}?${rest}` : base,
    tls: tlsOf(ours, options.tls, /^rediss:/i.test(url), shown),
    cluster,
    sentinels: undefined,
    service: '',
    db: 0,
    username: undefined,
    password: undefined,
  };
}

/** The hash tag Redis Cluster hashes for keys starting with `name`, or undefined. */
export function hashTag(name: string): string | undefined {
  const start = name.indexOf('{');
  const end = start === -1 ? -1 : name.indexOf('}', start + 1);
  return end > start + 1 ? name.slice(start + 1, end) : undefined;
}

/** Whether a Redis error means the URL's password, user or database is wrong (retrying cannot help). */
function isSetupError(message: string): boolean {
  return PASSWORD_MISSING.test(message) || PASSWORD_REFUSED.test(message) || NO_SUCH_DATABASE.test(message);
}

export interface LinkOptions extends ConnectionOptions {
  url: string;
  connectTimeout: number;
  connectionName: string;
  /** A reply refusing a command, key or channel (ACL) becomes PermissionDeniedError (producers);
   *  the worker's links keep the raw ReplyError, which its loops handle. */
  explainRefusals?: boolean;
}

/**
 * The ioredis client of a target: a Redis (of one server, or of Sentinel's primary: ioredis asks
 * the sentinels again on every reconnection, and a READONLY reply makes it reconnect), or a
 * Cluster, typed as a Redis (every call dothis makes on it has its keys in one slot).
 */
function client(target: Target, common: RedisOptions): Redis {
  const tls = target.tls ? { tls: target.tls } : {};
  if (target.sentinels) {
    return new Redis({
      ...common, ...tls, sentinels: [...target.sentinels], name: target.service, db: target.db,
      username: target.username, password: target.password,
      ...(target.tls ? { enableTLSForSentinelMode: true, sentinelTLS: target.tls } : {}),
      reconnectOnError: (error: Error) => (/^READONLY\b/.test(error.message) ? 1 : false),
    });
  }
  if (target.cluster) {
    const parsed = new URL(target.url);
    const { lazyConnect, enableOfflineQueue, enableAutoPipelining, retryStrategy, ...perNode } = common;
    const cluster = new Cluster([...target.cluster], {
      lazyConnect, enableOfflineQueue, enableAutoPipelining,
      clusterRetryStrategy: retryStrategy as (times: number) => number,
      redisOptions: {
        ...perNode, ...tls,
        username: parsed.username ? decodeURIComponent(parsed.username) : undefined,
        password: parsed.password ? decodeURIComponent(parsed.password) : undefined,
      },
    });
    return cluster as unknown as Redis;
  }
  return new Redis(target.url, { ...common, ...tls });
}

/** On a cluster, every queue name carries a hash tag: InvalidArgumentsError otherwise, at start (not CROSSSLOT later). */
export function checkQueueNames(url: string, names: readonly string[], options: ConnectionOptions = {}): void {
  if (!parseTarget(url, redactUrl(url), options).cluster) return;
  const untagged = names.filter((name) => hashTag(name) === undefined);
  if (untagged.length === 0) return;
  throw new InvalidArgumentsError('queue name', `${untagged.join(', ')} carry no hash tag, and on a Redis ` +
    `Cluster the keys of a queue must live in one slot: name the queue with braces, ${untagged.map((n) => `{${n}}`).join(', ')} ` +
    '(SPEC.md 11); the producers, workers and redis-cli users of the queue all use that name');
}

export class Link {
  readonly redis: Redis;
  readonly url: string;
  private readonly connectTimeout: number;
  private readonly explainRefusals: boolean;
  private readonly db: number;
  private lastError: Error | undefined;
  /** The reply that refused the login or the database, until the next call tries again. */
  private setupError: Error | undefined;

  /** Throws InvalidUrlError when the URL cannot be used. */
  constructor(options: LinkOptions) {
    this.db = checkRedisUrl(options.url);
    this.url = redactUrl(options.url);
    this.connectTimeout = options.connectTimeout;
    this.explainRefusals = options.explainRefusals ?? false;
    this.redis = client(parseTarget(options.url, this.url, options), {
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
      if (error instanceof ReplyError && !isSetupError((error as Error).message)) {
        const denied = this.explainRefusals ? explainNoPerm(error) : null;
        throw denied ?? error;
      }
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
    if (TLS_UNTRUSTED.test(message) || TLS_CODES.has((error as { code?: string } | null)?.code ?? '')) {
      return new ConnectionFailedError(this.url, message, options, `TLS with Redis at ${this.url} failed (${message}): ` +
        'the server\'s certificate is not signed by a CA this client trusts; give the CA that signed it with ' +
        '{ tls: { ca } }, ?tls_ca=FILE in the URL or DOTHIS_TLS_CA; dothis never turns certificate checks off');
    }
    return this.failure(message, error);
  }

  private failure(detail: string, cause?: unknown): ConnectionFailedError {
    return new ConnectionFailedError(this.url, detail, cause === undefined ? undefined : { cause });
  }
}
