import { describe, expect, it } from 'vitest';
import { backoffDelay } from './backoff.js';

describe('backoffDelay', () => {
  it('stays within [0, min(max, base * 2^attempt)] for every attempt', () => {
    for (let attempt = 0; attempt < 12; attempt++) {
      const ceiling = Math.min(250, 25 * 2 ** attempt);
      for (let i = 0; i < 200; i++) {
        const d = backoffDelay(attempt, 25, 250);
        expect(d).toBeGreaterThanOrEqual(0);
        expect(d).toBeLessThanOrEqual(ceiling);
      }
    }
  });

  it('scales the jitter fraction onto the exponential ceiling', () => {
    expect(backoffDelay(0, 25, 250, () => 1)).toBe(25);
    expect(backoffDelay(2, 25, 250, () => 1)).toBe(100);
    expect(backoffDelay(3, 25, 250, () => 0.5)).toBe(100);
    expect(backoffDelay(4, 25, 250, () => 1)).toBe(250);
    expect(backoffDelay(2000, 25, 250, () => 1)).toBe(250);
    expect(backoffDelay(5, 25, 250, () => 0)).toBe(0);
  });

  it('uses the whole window rather than clustering at the ceiling', () => {
    const samples = Array.from({ length: 2000 }, () => backoffDelay(3, 25, 250));
    const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
    expect(mean).toBeGreaterThan(80);
    expect(mean).toBeLessThan(120);
    expect(Math.min(...samples)).toBeLessThan(20);
  });
});
