/** The worker's log: one line per event, `2026-01-02T03:04:05.678Z WARNING dothis.worker: message`, on stderr by default. */

export type Level = 'debug' | 'info' | 'warning' | 'error';

/** Receives every log line of a worker; `source` is the part that wrote it (worker, reaper, ...). */
export type Logger = (level: Level, source: string, message: string) => void;

/** Writes to stderr; debug lines only when $DOTHIS_DEBUG is set. */
export const stderrLogger: Logger = (level, source, message) => {
  if (level === 'debug' && !process.env.DOTHIS_DEBUG) return;
  process.stderr.write(`${new Date().toISOString()} ${level.toUpperCase()} dothis.${source}: ${message}\n`);
};

/** A logger bound to one source. */
export interface Log {
  debug(message: string): void;
  info(message: string): void;
  warning(message: string): void;
  error(message: string): void;
}

export function logFor(logger: Logger, source: string): Log {
  const write = (level: Level) => (message: string): void => {
    try {
      logger(level, source, message);
    } catch {
      // a broken logger must not break the worker
    }
  };
  return { debug: write('debug'), info: write('info'), warning: write('warning'), error: write('error') };
}

/** The message of anything thrown. */
export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
