/** Wire constants (generated from schema/protocol.json) and the key builders that use them. */
import { KEY_TEMPLATES } from './generated/protocol.js';

export {
  DEFAULTS, ERROR_CODES, FIELDS, KEY_TEMPLATES, LIMITS, OUTCOMES, PROTOCOL, PROTOCOL_VERSION,
  REJECT_CODES, SCRIPT_NAMES, SHARED_KEYS, STATES,
} from './generated/protocol.js';
export type { ErrorCode, Field, Outcome, RejectCode, State } from './generated/protocol.js';

type KeyName = keyof typeof KEY_TEMPLATES;

/** Each template split at its placeholders: literal, slot, literal, ... (even indexes literal). */
const TEMPLATE_PARTS = new Map<KeyName, string[]>();

function partsOf(name: KeyName): string[] {
  let parts = TEMPLATE_PARTS.get(name);
  if (!parts) {
    parts = KEY_TEMPLATES[name].split(/<(queue|id|worker)>/);
    TEMPLATE_PARTS.set(name, parts);
  }
  return parts;
}

/**
 * Fills a key template of protocol.json in one pass, so a queue name or id holding "<id>" or "$&"
 * is inserted literally.
 */
export function buildKey(name: KeyName, vars: { queue: string; id?: string; worker?: string }): string {
  const parts = partsOf(name);
  let key = parts[0] ?? '';
  for (let i = 1; i < parts.length; i += 2) {
    const slot = parts[i] as 'queue' | 'id' | 'worker';
    const value = vars[slot];
    if (value === undefined) {
      throw new TypeError(`key ${name} needs a value for <${slot}>`);
    }
    key += value + (parts[i + 1] ?? '');
  }
  return key;
}

export const taskKey = (queue: string, id: string): string => buildKey('task', { queue, id });
/** Whether a task key is its queue's prefix, taskKey(queue, ''), followed by the id (the template ends with <id>). */
export const TASK_KEY_ENDS_WITH_ID = KEY_TEMPLATES.task.indexOf('<id>') === KEY_TEMPLATES.task.length - '<id>'.length;
export const pendingKey = (queue: string): string => buildKey('pending', { queue });
export const resultsChannel = (queue: string): string => buildKey('results', { queue });
export const outcomesChannel = (queue: string): string => buildKey('outcomes', { queue });
export const scheduledKey = (queue: string): string => buildKey('scheduled', { queue });
export const failedKey = (queue: string): string => buildKey('failed', { queue });
export const succeededKey = (queue: string): string => buildKey('succeeded', { queue });
export const dependentsKey = (queue: string, id: string): string => buildKey('dependents', { queue, id });
export const releasingKey = (queue: string): string => buildKey('releasing', { queue });
export const waitingKey = (queue: string): string => buildKey('waiting', { queue });
export const progressChannel = (queue: string): string => buildKey('progress', { queue });
