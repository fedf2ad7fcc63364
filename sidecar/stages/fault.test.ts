import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { fault as faultSchema } from '../../common/config/schema.js';
import type { SkeinError } from '../../common/errors.js';
import { compileFault } from './fault.js';

const parse = (input: object) => faultSchema.parse(input);

/** Runs a stage and reports what it did. */
function run(stage: NonNullable<ReturnType<typeof compileFault>>) {
  const result: { proceeded: boolean; aborted?: SkeinError } = { proceeded: false };
  const timer = stage({
    faultPassed: () => (result.proceeded = true),
    replyError: (err) => (result.aborted = err),
  });
  return { result, timer };
}

describe('compileFault', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('compiles to null when no fault is active', () => {
    expect(compileFault(undefined)).toBeNull();
    expect(compileFault(parse({}))).toBeNull();
    expect(compileFault(parse({ delay: { percent: 0, duration: '1s' }, abort: { percent: 0, status: 503 } }))).toBeNull();
    expect(compileFault(parse({ delay: { percent: 100, duration: '0s' } }))).toBeNull();
  });

  it('aborts with the configured status and the fault-injected reason', () => {
    const stage = compileFault(parse({ abort: { percent: 100, status: 418 } }))!;
    const { result, timer } = run(stage);
    expect(timer).toBeUndefined();
    expect(result.proceeded).toBe(false);
    expect(result.aborted).toMatchObject({ reason: 'fault-injected', status: 418 });
  });

  it('delays by the configured duration, then proceeds', () => {
    const stage = compileFault(parse({ delay: { percent: 100, duration: '250ms' } }))!;
    const { result, timer } = run(stage);
    expect(timer).toBeDefined();
    vi.advanceTimersByTime(249);
    expect(result.proceeded).toBe(false);
    vi.advanceTimersByTime(1);
    expect(result.proceeded).toBe(true);
  });

  it('applies each fault to its percentage of requests', () => {
    let draws = 0;
    // A deterministic sequence spread evenly over [0, 1).
    const random = () => ((draws++ * 0.6180339887) % 1);
    const stage = compileFault(parse({ abort: { percent: 30, status: 503 } }), random)!;
    let aborted = 0;
    for (let i = 0; i < 1000; i++) if (run(stage).result.aborted) aborted++;
    expect(aborted).toBeGreaterThan(270);
    expect(aborted).toBeLessThan(330);
  });

  it('can delay and then abort the same request', () => {
    const stage = compileFault(parse({ delay: { percent: 100, duration: '1s' }, abort: { percent: 100 } }))!;
    const { result } = run(stage);
    expect(result.aborted).toBeUndefined();
    vi.advanceTimersByTime(1000);
    expect(result.aborted?.status).toBe(503);
    expect(result.proceeded).toBe(false);
  });
});
