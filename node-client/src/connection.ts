/**
 * One ioredis connection with fail-fast semantics. Commands are never queued while Redis is
 * unreachable (enableOfflineQueue: false, maxRetriesPerRequest: 1); each call first waits for the
 * connection to be ready, at most connectTimeout ms or until the next failed attempt, and otherwise
 * rejects with a ConnectionFailedError that names the URL. ioredis keeps reconnecting in the
 * background (backoff capped at 1 s), so a Queue recovers when Redis comes back, and a subscriber
 * connection resubscribes.
 */
import { Redis, ReplyError } from 'ioredis';

import { ConnectionFailedError } from './errors.js';

export const DEFAULT_URL = 'redis://127.0.0.1:6379/0';
const RETRY_CAP_MS = 1000;

/** The URL with any password masked, for messages. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '****';
    return parsed.toString();
  } catch {
    return url;
  }
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
  private lastError: Error | undefined;

  constructor(options: LinkOptions) {
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
    });
  }

  /** Resolves with the client once it is ready; rejects with ConnectionFailedError otherwise. */
  async ready(): Promise<Redis> {
    const redis = this.redis;
    if (redis.status === 'ready') return redis;
    if (redis.status === 'end') {
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
      const onError = (error: Error): void => { settle(this.failure(error.message, error)); };
      const onEnd = (): void => { settle(this.failure(this.lastError?.message ?? 'the connection was closed')); };
      const timer = setTimeout(() => {
        settle(this.failure(`no connection within ${this.connectTimeout} ms`));
      }, this.connectTimeout);
      redis.on('ready', onReady);
      redis.on('error', onError);
      redis.on('end', onEnd);
    });
    if (redis.status === 'wait') {
      redis.connect().catch(() => undefined); // the outcome arrives through the events
    }
    return outcome;
  }

  /** Runs `command` on the ready client, turning connection failures into ConnectionFailedError. */
  async run<T>(command: (redis: Redis) => Promise<T>): Promise<T> {
    const redis = await this.ready();
    try {
      return await command(redis);
    } catch (error) {
      if (error instanceof ReplyError) throw error;
      const message = error instanceof Error ? error.message : String(error);
      throw this.failure(message, error);
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

  private failure(detail: string, cause?: unknown): ConnectionFailedError {
    return new ConnectionFailedError(this.url, detail, cause === undefined ? undefined : { cause });
  }
}
