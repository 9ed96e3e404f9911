/** What a worker says at start about the Redis server it uses (SPEC.md 4.4): persistence and eviction. */
import { errorText, type Log } from './log.js';
import { type Store } from './store.js';

/** Warns when appendonly is off or the eviction policy is not noeviction; a refused CONFIG GET is skipped. */
export async function warnAboutServer(store: Store, url: string, log: Log): Promise<void> {
  try {
    const setting = async (name: string): Promise<unknown> => {
      const reply: unknown = await store.run((redis) => redis.config('GET', name));
      return Array.isArray(reply) ? reply[1] : undefined;
    };
    const appendonly = await setting('appendonly');
    const policy = await setting('maxmemory-policy');
    if (appendonly === 'no') {
      log.warning(`Redis at ${url} runs with appendonly no: a crash of Redis loses the tasks written since its last snapshot (SPEC.md 4.4)`);
    }
    if (typeof policy === 'string' && policy !== 'noeviction') {
      log.warning(`Redis at ${url} evicts keys (maxmemory-policy ${policy}): task hashes and worker keys may vanish; use noeviction (SPEC.md 4.4)`);
    }
  } catch (error) {
    log.debug(`cannot read the configuration of Redis at ${url} (${errorText(error)})`);
  }
}
