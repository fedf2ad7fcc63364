import { describe, expect, it } from 'vitest';
import { defaultRenewalTiming } from './renewal.js';

describe('renewal timing', () => {
  it('renews at 2/3 of the life, earlier by up to a tenth of it with jitter', () => {
    const life = 24 * 3_600_000;
    expect(defaultRenewalTiming(() => 0).renewIn(0, life, 0)).toBeCloseTo((life * 2) / 3);
    expect(defaultRenewalTiming(() => 1).renewIn(0, life, 0)).toBeCloseTo((life * 2) / 3 - life / 10);
    // Measured from now, never negative.
    expect(defaultRenewalTiming(() => 0).renewIn(0, life, life)).toBe(0);
  });

  it('retries with growing backoff, but often enough before expiry', () => {
    const t = defaultRenewalTiming(() => 1);
    expect(t.retryIn(1, Number.POSITIVE_INFINITY, 0)).toBe(250);
    expect(t.retryIn(4, Number.POSITIVE_INFINITY, 0)).toBe(2_000);
    expect(t.retryIn(20, Number.POSITIVE_INFINITY, 0)).toBe(30_000);
    expect(t.retryIn(20, 4_000, 0)).toBe(1_000);
  });
});
