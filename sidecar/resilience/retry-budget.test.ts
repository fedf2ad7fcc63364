import { describe, expect, it } from 'vitest';
import { RetryBudget } from './retry-budget.js';

function clock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

function drain(budget: RetryBudget): number {
  let n = 0;
  while (budget.tryAcquireRetry()) n++;
  return n;
}

describe('RetryBudget', () => {
  it('caps retries at ratio x requests + minPerSecond in the first second', () => {
    const c = clock();
    const budget = new RetryBudget({ ratio: 0.2, minPerSecond: 10 }, c.now);
    for (let i = 0; i < 100; i++) budget.recordRequest();
    expect(drain(budget)).toBe(30); // 0.2 * 100 + 10
    budget.recordRequest();
    budget.recordRequest();
    budget.recordRequest();
    budget.recordRequest();
    budget.recordRequest();
    expect(drain(budget)).toBe(1); // 0.2 * 5 more requests
  });

  it('grants minPerSecond for each second the window covers, not ten at once', () => {
    const c = clock();
    const budget = new RetryBudget({ ratio: 0, minPerSecond: 10 }, c.now);
    expect(drain(budget)).toBe(10);
    c.advance(1000);
    expect(drain(budget)).toBe(10);
    c.advance(1000);
    expect(drain(budget)).toBe(10);
  });

  it('forgets requests and retries that slid out of the 10 s window', () => {
    const c = clock();
    const budget = new RetryBudget({ ratio: 0.5, minPerSecond: 0 }, c.now);
    for (let i = 0; i < 40; i++) budget.recordRequest();
    expect(drain(budget)).toBe(20);
    c.advance(5000);
    expect(drain(budget)).toBe(0); // still inside the window: the 20 retries count
    c.advance(5000); // the first second has now left the window
    expect(budget.available()).toBe(0);
    for (let i = 0; i < 10; i++) budget.recordRequest();
    expect(drain(budget)).toBe(5);
  });

  it('under sustained all-failing traffic stays within the budget over a long run', () => {
    const c = clock();
    const budget = new RetryBudget({ ratio: 0.2, minPerSecond: 10 }, c.now);
    let requests = 0;
    let retries = 0;
    // 200 rps for 30 s, every request wanting 2 retries.
    for (let ms = 0; ms < 30_000; ms += 5) {
      budget.recordRequest();
      requests++;
      if (budget.tryAcquireRetry()) retries++;
      if (budget.tryAcquireRetry()) retries++;
      c.advance(5);
    }
    expect(retries).toBeLessThanOrEqual(0.2 * requests + 10 * 30);
    expect(retries).toBeGreaterThan(0.2 * requests); // the minimum is actually granted
  });

  it('handles long idle gaps by clearing the whole ring', () => {
    const c = clock();
    const budget = new RetryBudget({ ratio: 1, minPerSecond: 0 }, c.now);
    for (let i = 0; i < 5; i++) budget.recordRequest();
    c.advance(3_600_000);
    expect(budget.tryAcquireRetry()).toBe(false);
  });
});
