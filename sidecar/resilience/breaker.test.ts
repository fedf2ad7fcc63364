import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { circuitBreakerPolicy } from '../../common/config/schema.js';
import { CircuitBreaker, type CircuitState } from './breaker.js';

/** opossum counts outcomes in promise callbacks; let them run. */
const settle = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await Promise.resolve();
};

function make(overrides: object = {}) {
  const changes: CircuitState[] = [];
  let rejects = 0;
  const breaker = new CircuitBreaker(
    circuitBreakerPolicy.parse({ volumeThreshold: 10, errorThresholdPercentage: 50, resetTimeout: '5s', ...overrides }),
    { onStateChange: (s) => changes.push(s), onReject: () => rejects++ },
  );
  return { breaker, changes, rejects: () => rejects };
}

async function run(breaker: CircuitBreaker, outcomes: boolean[]): Promise<void> {
  for (const ok of outcomes) {
    expect(breaker.tryAcquire()).toBe(true);
    breaker.release(ok);
    await settle();
  }
}

describe('CircuitBreaker', () => {
  const breakers: CircuitBreaker[] = [];
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => {
    for (const b of breakers.splice(0)) b.close();
    vi.useRealTimers();
  });
  const track = <T extends { breaker: CircuitBreaker }>(x: T): T => (breakers.push(x.breaker), x);

  it('stays closed below the volume threshold however bad the error rate', async () => {
    const { breaker, changes } = track(make());
    await run(breaker, Array(9).fill(false));
    expect(breaker.state).toBe('closed');
    expect(changes).toEqual([]);
  });

  it('opens once volume is reached and the error rate exceeds the threshold, then rejects', async () => {
    const { breaker, changes, rejects } = track(make());
    await run(breaker, [true, true, true, true, false, false, false, false, false]);
    expect(breaker.state).toBe('closed'); // 9 requests: below volume
    await run(breaker, [false]); // 10 requests, 6 failures: 60% > 50%
    expect(breaker.state).toBe('open');
    expect(changes).toEqual(['open']);
    expect(breaker.tryAcquire()).toBe(false);
    expect(breaker.tryAcquire()).toBe(false);
    expect(rejects()).toBe(2);
  });

  it('does not open at or under the threshold', async () => {
    const { breaker } = track(make());
    await run(breaker, [...Array(10).fill(true), ...Array(10).fill(false)]);
    expect(breaker.state).toBe('closed'); // exactly 50%
  });

  it('half-opens after resetTimeout, lets exactly one trial through, and closes on its success', async () => {
    const { breaker, changes } = track(make());
    await run(breaker, Array(10).fill(false));
    expect(breaker.state).toBe('open');
    vi.advanceTimersByTime(4999);
    expect(breaker.state).toBe('open');
    vi.advanceTimersByTime(1);
    expect(breaker.state).toBe('half-open');
    expect(breaker.tryAcquire()).toBe(true);
    expect(breaker.tryAcquire()).toBe(false); // the trial is in flight
    breaker.release(true);
    await settle();
    expect(breaker.state).toBe('closed');
    expect(changes).toEqual(['open', 'half-open', 'closed']);
    expect(breaker.tryAcquire()).toBe(true);
    breaker.release(true);
  });

  it('reopens when the half-open trial fails, and half-opens again after another resetTimeout', async () => {
    const { breaker, changes } = track(make());
    await run(breaker, Array(10).fill(false));
    vi.advanceTimersByTime(5000);
    await run(breaker, [false]);
    expect(breaker.state).toBe('open');
    vi.advanceTimersByTime(5000);
    expect(breaker.state).toBe('half-open');
    expect(changes).toEqual(['open', 'half-open', 'open', 'half-open']);
  });

  it('forgets failures that left the rolling window', async () => {
    const { breaker } = track(make({ rollingWindow: '10s' }));
    await run(breaker, Array(9).fill(false));
    vi.advanceTimersByTime(11_000);
    await run(breaker, Array(9).fill(true));
    await run(breaker, [false]);
    expect(breaker.state).toBe('closed'); // 1 failure of 10 in the window
  });

  it('caps in-flight attempts at maxConcurrent without counting that as failure', async () => {
    const { breaker, rejects } = track(make({ maxConcurrent: 3, volumeThreshold: 0, errorThresholdPercentage: 0 }));
    expect([breaker.tryAcquire(), breaker.tryAcquire(), breaker.tryAcquire(), breaker.tryAcquire()]).toEqual([true, true, true, false]);
    expect(breaker.active).toBe(3);
    expect(rejects()).toBe(1);
    breaker.release(true);
    await settle();
    expect(breaker.state).toBe('closed');
    expect(breaker.tryAcquire()).toBe(true);
    for (let i = 0; i < 3; i++) breaker.release(true);
    await settle();
    expect(breaker.active).toBe(0);
  });
});
