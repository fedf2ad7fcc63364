/**
 * Durations in config are written the Go/Envoy way ("250ms", "3s", "1m30s") and carried as
 * milliseconds inside the process.
 */
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h)/y;

/**
 * Parses a duration string to whole milliseconds; returns undefined when it is not one, or
 * when it is under 1 ms but not zero (rounded to 0 it would turn a timeout off).
 */
export function parseDuration(text: string): number | undefined {
  const ms = exactDuration(text);
  return ms === undefined ? undefined : wholeMs(ms);
}

/** `ms` rounded to whole milliseconds; undefined when that would make a non-zero duration 0. */
export function wholeMs(ms: number): number | undefined {
  return ms > 0 && ms < 0.5 ? undefined : Math.round(ms);
}

/** A duration string's milliseconds, not rounded; undefined when it is not one. */
export function exactDuration(text: string): number | undefined {
  if (text === '0') return 0;
  PART.lastIndex = 0;
  let total = 0;
  let matched = false;
  while (PART.lastIndex < text.length) {
    const m = PART.exec(text);
    if (!m) return undefined;
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
    matched = true;
  }
  return matched ? total : undefined;
}

/** The shortest exact string form of a millisecond count, e.g. 1500 → "1500ms", 3000 → "3s". */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
