/** The keys of one queue a worker serves, and how an entry names its task (SPEC.md 2.1, 2.2, 7.4). */
import { InvalidArgumentsError } from '../errors.js';
import { buildKey } from '../protocol.js';
import { formatMicros } from '../time.js';
import { checkId } from '../validate.js';
import { decodeUtf8 } from './json.js';

export class QueueKeys {
  readonly pending: string;
  readonly executing: string;
  readonly scheduled: string;
  readonly failed: string;
  readonly succeeded: string;
  readonly releasing: string;
  readonly waiting: string;
  readonly rejected: string;
  readonly workers: string;
  readonly results: string;
  readonly progress: string;
  readonly periodic: string;
  /** `<queue>:task:` as bytes: the prefix of the full-key form of an entry. */
  private readonly prefix: Buffer;

  constructor(readonly queue: string) {
    const vars = { queue };
    this.pending = buildKey('pending', vars);
    this.executing = buildKey('executing', vars);
    this.scheduled = buildKey('scheduled', vars);
    this.failed = buildKey('failed', vars);
    this.succeeded = buildKey('succeeded', vars);
    this.releasing = buildKey('releasing', vars);
    this.waiting = buildKey('waiting', vars);
    this.rejected = buildKey('rejected', vars);
    this.workers = buildKey('workers', vars);
    this.results = buildKey('results', vars);
    this.progress = buildKey('progress', vars);
    this.periodic = buildKey('periodic', vars);
    this.prefix = Buffer.from(buildKey('task', { queue, id: '' }));
  }

  task(id: string): string {
    return buildKey('task', { queue: this.queue, id });
  }

  dependents(id: string): string {
    return buildKey('dependents', { queue: this.queue, id });
  }

  worker(workerId: string): string {
    return buildKey('worker', { queue: this.queue, worker: workerId });
  }

  /**
   * The id an entry names (SPEC.md 2.2): the entry without the `<queue>:task:` prefix when it has
   * it, else the whole entry; then checked as an id. `{ problem }` when it is invalid.
   */
  parseEntry(entry: Buffer): { id: string } | { problem: string } {
    const bytes = entry.subarray(0, this.prefix.length).equals(this.prefix) ? entry.subarray(this.prefix.length) : entry;
    const text = decodeUtf8(bytes);
    if (text === null) return { problem: 'the id is not valid UTF-8' };
    try {
      return { id: checkId(text) };
    } catch (error) {
      if (error instanceof InvalidArgumentsError) return { problem: `the id ${error.problem}` };
      throw error;
    }
  }
}

/** A rejected record (SPEC.md 7.4), JSON text. */
export function rejectionRecord(entry: Buffer, code: string, reason: string, workerId: string, nowMicros: bigint): string {
  return JSON.stringify({
    entry: entry.toString('utf8').slice(0, 1024),
    'error-code': code,
    'error-reason': reason,
    'rejected-created': formatMicros(nowMicros),
    worker: workerId,
  });
}

/** An entry for log lines: printable, at most 80 characters. */
export function showEntry(entry: Buffer): string {
  return JSON.stringify(entry.toString('utf8').slice(0, 80));
}
