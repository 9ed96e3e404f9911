/**
 * Cancel requests while a task runs (SPEC.md 5.14): about twice a second the worker asks
 * `HEXISTS <queue>:task:<id> cancel-requested` for each task whose try is running, and stops the
 * try of each task that has the field; the task is then recorded as cancelled.
 */
import { type Engine } from './engine.js';

export async function checkCancels(engine: Engine): Promise<void> {
  const running = [...engine.held.entries()].filter(([, held]) => held.stop !== null);
  if (running.length === 0) return;
  const found = await Promise.all(running.map(([key]) => engine.store.run((redis) => redis.hexists(key, 'cancel-requested'))));
  running.forEach(([, held], index) => {
    if (found[index] === 1 && held.stop) {
      engine.log.info(`task ${held.claim.id} was cancelled while it ran: stopping its try`);
      held.stop({ kind: 'cancelled' });
    }
  });
}
