/**
 * One analysis of a canary step: advance when the canary subset's measured success rate
 * and p99 meet the thresholds, hold while it has too few requests to judge or no healthy
 * instance to advance onto (up to `maxHolds` extra intervals), otherwise roll back with a
 * reason an operator can act on.
 *
 * Latencies arrive as histogram buckets, so the p99 is only known to lie in one bucket: a
 * p99 estimated inside 250–500 ms may be 300 ms. `maxP99` is therefore judged at the smallest
 * bucket bound at or above it, which the bucket counts answer exactly (rolled back only when
 * more than 1% of the requests took longer than that bound). `maxP99` 0 checks no latency.
 */
import { DURATION_BUCKETS } from '../../common/proto/telemetry.js';
import type { Golden } from '../observability/golden.js';
import type { CanarySpec } from './schema.js';

export type Decision = { action: 'advance' } | { action: 'hold'; reason: string } | { action: 'rollback'; reason: string };

export function decide(spec: CanarySpec, subset: string, measured: Golden, holds: number): Decision {
  const t = spec.thresholds;
  if (measured.requests < t.minRequests) return holdOrRollback(spec, `${measured.requests} requests to ${subset}, fewer than minRequests ${t.minRequests}`, holds);
  if (measured.successRate !== null && measured.successRate < t.minSuccessRate) {
    return { action: 'rollback', reason: `success rate ${pct(measured.successRate)} of ${subset} is below minSuccessRate ${pct(t.minSuccessRate)} (${measured.failures} of ${measured.requests} failed)` };
  }
  const p99 = measured.latencyMs?.p99;
  const limit = boundAtOrAbove(t.maxP99);
  if (t.maxP99 > 0 && p99 !== undefined && p99 > limit) {
    const judged = limit === t.maxP99 ? '' : `, judged at the histogram bound ${limit}ms`;
    return { action: 'rollback', reason: `p99 latency ${p99}ms of ${subset} is above maxP99 ${t.maxP99}ms (estimated within its latency bucket${judged})` };
  }
  return { action: 'advance' };
}

/**
 * An advance onto `subset` with no healthy instance would send the next step's share of requests
 * nowhere: it holds instead (as Flagger halts while the canary workload is not ready), and those
 * holds count against maxHolds like those for too few requests, so a canary that never comes
 * back is rolled back rather than held forever.
 */
export function unlessUnready(spec: CanarySpec, subset: string, decision: Decision, healthy: number, holds: number): Decision {
  if (decision.action !== 'advance' || healthy > 0) return decision;
  return holdOrRollback(spec, `no healthy instance of ${subset} to move more requests onto`, holds);
}

function holdOrRollback(spec: CanarySpec, reason: string, holds: number): Decision {
  return holds < spec.maxHolds ? { action: 'hold', reason } : { action: 'rollback', reason: `${reason} after ${holds} extra intervals` };
}

/** The smallest latency bucket bound (ms) at or above `ms`; past the last bound, `ms` itself. */
export function boundAtOrAbove(ms: number): number {
  for (const seconds of DURATION_BUCKETS) if (seconds * 1000 >= ms) return seconds * 1000;
  return ms;
}

function pct(rate: number): string {
  return `${(rate * 100).toFixed(2)}%`;
}
