import { describe, expect, it } from 'vitest';
import { TokenBucket } from './rate-limit.js';

function clock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

function admitted(bucket: TokenBucket, tries: number): number {
  let n = 0;
  for (let i = 0; i < tries; i++) if (bucket.take() === 0) n++;
  return n;
}

describe('TokenBucket', () => {
  it('admits a full burst at once, then nothing until it refills', () => {
    const c = clock();
    const bucket = new TokenBucket({ requestsPerSecond: 5, burst: 5 }, c.now);
    expect(admitted(bucket, 20)).toBe(5);
    // Empty: the next token is a fifth of a second away.
    expect(bucket.take()).toBeCloseTo(200);
    c.advance(150);
    expect(bucket.take()).toBeCloseTo(50);
    c.advance(50);
    expect(bucket.take()).toBe(0);
  });

  it('refills at requestsPerSecond up to burst, never beyond', () => {
    const c = clock();
    const bucket = new TokenBucket({ requestsPerSecond: 10, burst: 3 }, c.now);
    expect(admitted(bucket, 10)).toBe(3);
    c.advance(60_000);
    expect(admitted(bucket, 10)).toBe(3);
    c.advance(200);
    expect(admitted(bucket, 10)).toBe(2);
  });

  it('holds a rate under one a second: one request every two seconds at 0.5', () => {
    const c = clock();
    const bucket = new TokenBucket({ requestsPerSecond: 0.5, burst: 1 }, c.now);
    expect(bucket.take()).toBe(0);
    expect(bucket.take()).toBeCloseTo(2000);
    c.advance(1999);
    expect(bucket.take()).toBeGreaterThan(0);
    c.advance(1);
    expect(bucket.take()).toBe(0);
  });

  it('takes nothing from a refused request: waiting callers do not push the next token away', () => {
    const c = clock();
    const bucket = new TokenBucket({ requestsPerSecond: 1, burst: 1 }, c.now);
    expect(bucket.take()).toBe(0);
    for (let i = 0; i < 100; i++) bucket.take();
    c.advance(1000);
    expect(bucket.take()).toBe(0);
  });
});
