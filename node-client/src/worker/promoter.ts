/**
 * Promote (SPEC.md 5.11): due entries of `<queue>:scheduled` (retries, delayed tasks, tasks
 * scheduled by hand) move to pending, one promote.lua per entry, so each moves once however many
 * workers promote. A pass that finds a full batch goes on at once.
 */
import { now, type Engine } from './engine.js';
import { type QueueKeys } from './keys.js';

const BATCH = 100;

export async function promoteDue(engine: Engine, lanes: QueueKeys[]): Promise<void> {
  for (const keys of lanes) {
    for (;;) {
      const at = now(engine.clock);
      const due = await engine.store.run((redis) => redis.zrangebyscoreBuffer(keys.scheduled, '-inf', at.ms, 'LIMIT', 0, BATCH));
      for (const entry of due) {
        const parsed = keys.parseEntry(entry);
        // An entry whose id is invalid is promoted with the key <queue>:task: in place of its task key; the claim rejects it.
        await engine.store.promote(keys, entry, 'id' in parsed ? parsed.id : null, at.ms);
      }
      if (due.length < BATCH) break;
    }
  }
}
