import { describe, expect, it } from 'vitest';
import { validate } from '../../common/config/parse.js';
import type { Golden } from '../observability/golden.js';
import { decide } from './decide.js';
import { canaryBody } from './schema.js';

const spec = validate(canaryBody, { to: 'v2', thresholds: { minRequests: 20 }, maxHolds: 2 });
const golden = (requests: number, failures: number, p99: number): Golden => ({
  requests,
  failures,
  rps: requests,
  successRate: requests === 0 ? null : (requests - failures) / requests,
  latencyMs: requests === 0 ? null : { p50: p99 / 2, p95: p99, p99, mean: p99 / 2 },
});

describe('decide', () => {
  it('advances a healthy step', () => {
    expect(decide(spec, 'v2', golden(100, 0, 40), 0)).toEqual({ action: 'advance' });
  });

  it('rolls back on a low success rate, naming it', () => {
    const d = decide(spec, 'v2', golden(100, 50, 40), 0);
    expect(d.action).toBe('rollback');
    expect(d.action === 'rollback' && d.reason).toMatch(/success rate 50\.00% of v2 is below minSuccessRate 99\.00%/);
  });

  it('rolls back on a slow p99', () => {
    const d = decide(spec, 'v2', golden(100, 0, 750), 0);
    expect(d.action === 'rollback' && d.reason).toMatch(/p99 latency 750ms of v2 is above maxP99 500ms/);
  });

  it('judges maxP99 at the bucket bound above it: a p99 inside 250-500 ms may be well under 450 ms', () => {
    // Every request took 300 ms: the buckets say only "250 to 500 ms", estimated at 497.5 ms.
    const at450 = validate(canaryBody, { to: 'v2', thresholds: { minRequests: 20, maxP99: '450ms' } });
    expect(decide(at450, 'v2', golden(100, 0, 497.5), 0)).toEqual({ action: 'advance' });
    const d = decide(at450, 'v2', golden(100, 0, 520), 0);
    expect(d.action === 'rollback' && d.reason).toMatch(/above maxP99 450ms \(estimated within its latency bucket, judged at the histogram bound 500ms\)/);
    const at250 = validate(canaryBody, { to: 'v2', thresholds: { minRequests: 20, maxP99: '250ms' } });
    expect(decide(at250, 'v2', golden(100, 0, 260), 0).action).toBe('rollback');
  });

  it('checks no latency with maxP99 0 (not "p99 at most 1 ms", which would roll back every canary)', () => {
    for (const maxP99 of [0, '0s', '0ms']) {
      const off = validate(canaryBody, { to: 'v2', thresholds: { minRequests: 20, maxP99 } });
      expect(off.thresholds.maxP99).toBe(0);
      expect(decide(off, 'v2', golden(100, 0, 9_000), 0)).toEqual({ action: 'advance' });
    }
  });

  it('holds with too few requests, then rolls back after maxHolds', () => {
    expect(decide(spec, 'v2', golden(5, 0, 10), 1).action).toBe('hold');
    expect(decide(spec, 'v2', golden(5, 0, 10), 2).action).toBe('rollback');
  });
});

describe('canaryBody', () => {
  it('fills the defaults', () => {
    expect(validate(canaryBody, { to: 'v2' })).toEqual({
      from: 'v1', to: 'v2', steps: [10, 25, 50, 100], interval: 30_000, thresholds: { minSuccessRate: 0.99, maxP99: 500, minRequests: 20 }, maxHolds: 3,
    });
  });

  it('names the faulty field', () => {
    expect(() => validate(canaryBody, { to: 'v2', steps: [50, 25, 100] })).toThrow(/steps: weights must increase/);
    expect(() => validate(canaryBody, { to: 'v2', steps: [10, 50] })).toThrow(/steps: the last step must be 100/);
    expect(() => validate(canaryBody, { to: 'v1' })).toThrow(/to: must differ/);
    expect(() => validate(canaryBody, { to: 'v2', interval: 'soon' })).toThrow(/interval: invalid duration/);
    expect(() => validate(canaryBody, { to: 'v2', thresholds: { minSuccessRate: 2 } })).toThrow(/thresholds\.minSuccessRate/);
  });

  it('refuses a maxP99 past the last latency bucket (10s), which no p99 estimate could exceed', () => {
    expect(validate(canaryBody, { to: 'v2', thresholds: { maxP99: '10s' } }).thresholds.maxP99).toBe(10_000);
    for (const [maxP99, shown] of [['1000h', '1000h'], ['10001ms', '10001ms'], [3_600_000, '1h']] as const) {
      expect(() => validate(canaryBody, { to: 'v2', thresholds: { maxP99 } })).toThrow(
        `thresholds.maxP99: must be at most 10s (the last latency bucket: a p99 past it is not measured), not ${shown}; 0 turns the latency check off`,
      );
    }
  });

  it('refuses minRequests 0: a step judged on no request would advance a canary nothing was measured of', () => {
    expect(() => validate(canaryBody, { to: 'v2', thresholds: { minRequests: 0 } })).toThrow(/thresholds\.minRequests: must be at least 1: a step with no request to the canary proves nothing about it/);
    const one = validate(canaryBody, { to: 'v2', thresholds: { minRequests: 1 }, maxHolds: 0 });
    expect(decide(one, 'v2', golden(0, 0, 0), 0)).toEqual({ action: 'rollback', reason: '0 requests to v2, fewer than minRequests 1 after 0 extra intervals' });
    expect(decide(one, 'v2', golden(1, 0, 5), 0)).toEqual({ action: 'advance' });
  });
});
