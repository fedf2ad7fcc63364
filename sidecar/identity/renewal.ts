/**
 * When to renew a leaf: at 2/3 of its life, minus up to a tenth of its life of random
 * jitter, so sidecars started together do not all renew at once. When a renewal fails, retry
 * with exponential backoff, never later than a short while before expiry.
 */
export interface RenewalTiming {
  /** Milliseconds from now until the certificate should be renewed. */
  renewIn(issuedAtMs: number, notAfterMs: number, nowMs: number): number;
  /** Milliseconds until retry number `attempt` (1, 2, …) after a failed renewal. */
  retryIn(attempt: number, notAfterMs: number, nowMs: number): number;
}

export function defaultRenewalTiming(random: () => number = Math.random): RenewalTiming {
  return {
    renewIn(issuedAtMs, notAfterMs, nowMs) {
      const life = notAfterMs - issuedAtMs;
      const at = issuedAtMs + life * (2 / 3) - life * 0.1 * random();
      return Math.max(0, at - nowMs);
    },
    retryIn(attempt, notAfterMs, nowMs) {
      const backoff = Math.min(30_000, 250 * 2 ** (attempt - 1)) * (0.5 + random() / 2);
      // Close to expiry, keep trying often rather than sleeping past it.
      const left = notAfterMs - nowMs;
      return Math.max(100, left > 0 ? Math.min(backoff, left / 4) : backoff);
    },
  };
}
