/**
 * Timestamps as the protocol writes them: ISO-8601 UTC with microseconds and Z,
 * e.g. 2015-12-05T00:19:01.834909Z.
 *
 * Date has millisecond resolution; the microseconds come from the monotonic clock
 * (process.hrtime), anchored to Date.now() and re-anchored whenever the two drift apart by a
 * millisecond or more (the wall clock was adjusted), so the time stays the wall-clock time.
 */
let anchorWallMicros = 0n;
let anchorMonoNanos = 0n;

function reanchor(wallMillis: number, mono: bigint): bigint {
  anchorWallMicros = BigInt(wallMillis) * 1000n;
  anchorMonoNanos = mono;
  return anchorWallMicros;
}

/** Microseconds since the Unix epoch. */
export function nowMicros(): bigint {
  const wallMillis = Date.now();
  const mono = process.hrtime.bigint();
  if (anchorMonoNanos === 0n) {
    return reanchor(wallMillis, mono);
  }
  const estimate = anchorWallMicros + (mono - anchorMonoNanos) / 1000n;
  const drift = estimate / 1000n - BigInt(wallMillis);
  return drift > 1n || drift < -1n ? reanchor(wallMillis, mono) : estimate;
}

/** Formats microseconds since the epoch as 2015-12-05T00:19:01.834909Z. */
export function formatMicros(micros: bigint): string {
  const millis = micros / 1000n;
  const sub = micros % 1000n;
  const iso = new Date(Number(millis)).toISOString(); // 2015-12-05T00:19:01.834Z
  return `${iso.slice(0, -1)}${sub.toString().padStart(3, '0')}Z`;
}

/** The current time as the protocol writes it. */
export function isoNow(): string {
  return formatMicros(nowMicros());
}
