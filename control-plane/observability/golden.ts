/**
 * Golden metrics from mergeable latency histograms: request count, rate, success rate and
 * p50/p95/p99. Latencies come as counts per fixed bucket (the sidecars' Prometheus buckets),
 * so a percentile is known to lie within its bucket; it is estimated by linear interpolation
 * inside the bucket, as Prometheus' histogram_quantile does.
 */

export interface Golden {
  requests: number;
  failures: number;
  /** Requests per second over the window. */
  rps: number;
  /** Fraction 0..1 of requests that did not fail (5xx, no answer, gRPC non-OK); null without requests. */
  successRate: number | null;
  /** Milliseconds; null without requests. */
  latencyMs: { p50: number; p95: number; p99: number; mean: number } | null;
}

/** A mutable sum of edge deltas. */
export class Tally {
  requests = 0;
  failures = 0;
  sumSeconds = 0;
  buckets: number[];

  constructor(bucketCount: number) {
    this.buckets = new Array<number>(bucketCount).fill(0);
  }

  add(other: { requests: number; failures: number; sumSeconds: number; buckets: readonly number[] }): void {
    this.requests += other.requests;
    this.failures += other.failures;
    this.sumSeconds += other.sumSeconds;
    const n = Math.min(this.buckets.length, other.buckets.length);
    for (let i = 0; i < n; i++) this.buckets[i]! += other.buckets[i]!;
  }

  /** What this tally grew by since it was `earlier` (a copy taken then). */
  since(earlier: Tally): Tally {
    const delta = this.copy();
    delta.requests -= earlier.requests;
    delta.failures -= earlier.failures;
    delta.sumSeconds -= earlier.sumSeconds;
    const n = Math.min(delta.buckets.length, earlier.buckets.length);
    for (let i = 0; i < n; i++) delta.buckets[i]! -= earlier.buckets[i]!;
    return delta;
  }

  copy(): Tally {
    const c = new Tally(this.buckets.length);
    c.add(this);
    return c;
  }

  golden(windowSeconds: number, bounds: readonly number[]): Golden {
    const r = this.requests;
    return {
      requests: r,
      failures: this.failures,
      rps: round(r / windowSeconds, 3),
      successRate: r === 0 ? null : round((r - this.failures) / r, 4),
      latencyMs:
        r === 0
          ? null
          : {
              p50: round(quantile(0.5, this.buckets, bounds) * 1000, 2),
              p95: round(quantile(0.95, this.buckets, bounds) * 1000, 2),
              p99: round(quantile(0.99, this.buckets, bounds) * 1000, 2),
              mean: round((this.sumSeconds / r) * 1000, 2),
            },
    };
  }
}

/**
 * The q-quantile (seconds) of non-cumulative bucket counts with upper `bounds` (the last
 * count is the +Inf bucket, reported as the largest finite bound).
 */
export function quantile(q: number, buckets: readonly number[], bounds: readonly number[]): number {
  const total = buckets.reduce((a, b) => a + b, 0);
  if (total === 0) return NaN;
  const rank = q * total;
  let cumulative = 0;
  for (let i = 0; i < buckets.length; i++) {
    const count = buckets[i]!;
    if (count > 0 && cumulative + count >= rank) {
      if (i >= bounds.length) return bounds[bounds.length - 1]!;
      const lower = i === 0 ? 0 : bounds[i - 1]!;
      const upper = bounds[i]!;
      return lower + (upper - lower) * ((rank - cumulative) / count);
    }
    cumulative += count;
  }
  return bounds[bounds.length - 1]!;
}

function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
