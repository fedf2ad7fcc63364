/**
 * Delay before retry number `attempt` (0 for the first retry): exponential growth with full
 * jitter, as in AWS's "Exponential Backoff And Jitter". Full jitter spreads retries of many
 * callers evenly over the window instead of letting them arrive in synchronized waves.
 */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  // 2 ** attempt overflows to Infinity for silly attempts; Math.min keeps the cap.
  const ceiling = Math.min(maxMs, baseMs * 2 ** attempt);
  return random() * ceiling;
}
