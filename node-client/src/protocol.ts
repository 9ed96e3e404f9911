/** Wire constants (generated from schema/protocol.json) and the key builders that use them. */
import { KEY_TEMPLATES } from './generated/protocol.js';

export {
  DEFAULTS, ERROR_CODES, FIELDS, KEY_TEMPLATES, LIMITS, OUTCOMES, PROTOCOL, PROTOCOL_VERSION,
  REJECT_CODES, SCRIPT_NAMES, SHARED_KEYS, STATES,
} from './generated/protocol.js';
export type { ErrorCode, Field, Outcome, RejectCode, State } from './generated/protocol.js';

type KeyName = keyof typeof KEY_TEMPLATES;

/**
 * Fills a key template of protocol.json in one pass, so a queue name or id holding "<id>" or "$&"
 * is inserted literally.
 */
export function buildKey(name: KeyName, vars: { queue: string; id?: string; worker?: string }): string {
  return KEY_TEMPLATES[name].replace(/<(queue|id|worker)>/g, (placeholder: string, slot: string) => {
    const value = vars[slot as 'queue' | 'id' | 'worker'];
    if (value === undefined) {
      throw new TypeError(`key ${name} needs a value for ${placeholder}`);
    }
    return value;
  });
}

export const taskKey = (queue: string, id: string): string => buildKey('task', { queue, id });
export const pendingKey = (queue: string): string => buildKey('pending', { queue });
export const resultsChannel = (queue: string): string => buildKey('results', { queue });
export const scheduledKey = (queue: string): string => buildKey('scheduled', { queue });
export const failedKey = (queue: string): string => buildKey('failed', { queue });
export const succeededKey = (queue: string): string => buildKey('succeeded', { queue });
export const dependentsKey = (queue: string, id: string): string => buildKey('dependents', { queue, id });
export const releasingKey = (queue: string): string => buildKey('releasing', { queue });
export const waitingKey = (queue: string): string => buildKey('waiting', { queue });
export const progressChannel = (queue: string): string => buildKey('progress', { queue });
