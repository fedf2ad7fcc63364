/**
 * One analysis of a canary step: advance when the canary subset's measured success rate
 * and p99 meet the thresholds, hold while it has too few requests to judge (up to
 * `maxHolds` extra intervals), otherwise roll back with a reason an operator can act on.
 */
import type { Golden } from '../observability/golden.js';
import type { CanarySpec } from './schema.js';

export type Decision = { action: 'advance' } | { action: 'hold'; reason: string } | { action: 'rollback'; reason: string };

export function decide(spec: CanarySpec, subset: string, measured: Golden, holds: number): Decision {
  const t = spec.thresholds;
  if (measured.requests < t.minRequests || measured.requests === 0) {
    const reason = `${measured.requests} requests to ${subset}, fewer than minRequests ${t.minRequests}`;
    return holds < spec.maxHolds ? { action: 'hold', reason } : { action: 'rollback', reason: `${reason} after ${holds} extra intervals` };
  }
  if (measured.successRate !== null && measured.successRate < t.minSuccessRate) {
    return { action: 'rollback', reason: `success rate ${pct(measured.successRate)} of ${subset} is below minSuccessRate ${pct(t.minSuccessRate)} (${measured.failures} of ${measured.requests} failed)` };
  }
  const p99 = measured.latencyMs?.p99;
  if (p99 !== undefined && p99 > t.maxP99) {
    return { action: 'rollback', reason: `p99 latency ${p99}ms of ${subset} is above maxP99 ${t.maxP99}ms` };
  }
  return { action: 'advance' };
}

function pct(rate: number): string {
  return `${(rate * 100).toFixed(2)}%`;
}
