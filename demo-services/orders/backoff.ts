/** Exponential backoff with equal jitter: at least half the step, so retries really do spread out. */
export function backoffMs(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const step = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  return step / 2 + random() * (step / 2);
}
