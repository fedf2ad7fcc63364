import { describe, expect, it } from 'vitest';
import { FaultKnobs, FaultsBody } from './faults.js';

describe('FaultKnobs', () => {
  it('fails a call when the draw is under the error rate, and changes only the knobs given', async () => {
    const draws = [0.1, 0.9];
    const knobs = new FaultKnobs({ latencyMs: 0, errorRate: 0 }, () => draws.shift()!);
    expect(await knobs.apply()).toBe(false);
    expect(knobs.set({ errorRate: 0.5 })).toEqual({ latencyMs: 0, errorRate: 0.5 });
    expect(await knobs.apply()).toBe(true);
    expect(await knobs.apply()).toBe(false);
  });

  it('waits the injected latency', async () => {
    const knobs = new FaultKnobs({ latencyMs: 60, errorRate: 0 });
    const started = performance.now();
    await knobs.apply();
    expect(performance.now() - started).toBeGreaterThanOrEqual(55);
  });

  it('accepts only sane knob values', () => {
    expect(FaultsBody.safeParse({ errorRate: 1.5 }).success).toBe(false);
    expect(FaultsBody.safeParse({ latencyMs: -1 }).success).toBe(false);
    expect(FaultsBody.safeParse({ latency: 5 }).success).toBe(false);
    expect(FaultsBody.safeParse({ latencyMs: 200, errorRate: 0.25 }).success).toBe(true);
  });
});
