/**
 * dothis: a language-neutral Redis task queue. This package is the Node producer (it enqueues
 * tasks for workers in any language speaking the protocol and waits for their results) and a Node
 * worker (it runs tasks enqueued by producers in any language).
 */
export { Queue, type EnqueueOptions, type PageOptions, type QueueOptions, type TaskSpec } from './queue.js';
export type { TaskRef } from './options.js';
export {
  Task, type CancelResult, type DeleteResult, type Progress, type TaskInfo, type TaskResult, type TaskState, type WaitOptions,
} from './task.js';
export {
  AuthenticationFailedError, ConnectionFailedError, DependencyError, DothisError, InvalidArgumentsError, InvalidUrlError,
  MalformedResultError, PermissionDeniedError, QueueClosedError, TaskExistsError, TaskFailedError, TaskNotFoundError, WaitTimeoutError,
} from './errors.js';
export {
  DEFAULTS, ERROR_CODES, FIELDS, KEY_TEMPLATES, LIMITS, OUTCOMES, PROTOCOL, PROTOCOL_VERSION,
  REJECT_CODES, SCRIPT_NAMES, STATES, buildKey,
  type ErrorCode, type Field, type Outcome, type RejectCode, type State,
} from './protocol.js';
export { SCRIPTS } from './generated/scripts.js';
export { SCRIPT_MANIFEST, type ScriptName } from './generated/manifest.js';
export { formatMicros, isoNow } from './time.js';
export type { Args, JsonValue } from './validate.js';
export { Worker, type StopOptions } from './worker/worker.js';
export type { PoolKind, WorkerOptions } from './worker/options.js';
export { withParams, type TaskContext, type TaskFunction } from './worker/registry.js';
export { Retry } from './worker/retry.js';
export type { ScheduleOptions } from './worker/scheduler.js';
export type { Level, Logger } from './worker/log.js';
