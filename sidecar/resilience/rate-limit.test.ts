import { describe, expect, it } from 'vitest';
import { parseSnapshot } from '../../common/config/parse.js';
import type { SnapshotInput } from '../../common/config/schema.js';
import { InboundRateLimit, TokenBucket } from './rate-limit.js';

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

describe('InboundRateLimit', () => {
  const limitOf = (rateLimit: NonNullable<SnapshotInput['services']>[string]['rateLimit'], c: ReturnType<typeof clock>) =>
    new InboundRateLimit(parseSnapshot({ services: { catalog: { rateLimit } } }).services.catalog!.rateLimit!, c.now);
  const admittedFrom = (limit: InboundRateLimit, source: string, tries: number): number => {
    let n = 0;
    for (let i = 0; i < tries; i++) if (limit.admit(source, 'GET', '/', {}, 'catalog') === null) n++;
    return n;
  };

  it('gives each caller its own bucket with perSource, and named callers theirs with sources', () => {
    const c = clock();
    const limit = limitOf({ perSource: { requestsPerSecond: 2 }, sources: { gateway: { requestsPerSecond: 5 } } }, c);
    expect(admittedFrom(limit, 'web', 10)).toBe(2);
    expect(admittedFrom(limit, 'orders', 10)).toBe(2);
    expect(admittedFrom(limit, 'gateway', 10)).toBe(5);
    expect(limit.admit('web', 'GET', '/', {}, 'catalog')).toEqual({ limit: { requestsPerSecond: 2, burst: 2 }, source: 'web', route: undefined, waitMs: 500 });
    c.advance(500);
    expect(admittedFrom(limit, 'web', 10)).toBe(1);
  });

  it('admits a request only with a token in its own bucket and the total, and takes none when either refuses', () => {
    const c = clock();
    // Callers' own buckets refill slowly, so what they keep shows.
    const limit = limitOf({ requestsPerSecond: 4, perSource: { requestsPerSecond: 0.001, burst: 3 } }, c);
    expect(admittedFrom(limit, 'web', 10)).toBe(3);
    // web over its own limit took nothing from the total: orders gets the total's last token.
    expect(admittedFrom(limit, 'orders', 10)).toBe(1);
    expect(limit.admit('orders', 'GET', '/', {}, 'catalog')).toEqual({ limit: { requestsPerSecond: 4, burst: 4 }, source: undefined, route: undefined, waitMs: 250 });
    // Refused by the total, orders kept its own other two tokens.
    c.advance(1000);
    expect(admittedFrom(limit, 'orders', 10)).toBe(2);
  });

  it("gives the requests a route matches that route's bucket in place of the total's, the first route that matches, with the caller's own on top", () => {
    const c = clock();
    const limit = limitOf({
      requestsPerSecond: 3,
      perSource: { requestsPerSecond: 3, burst: 5 },
      routes: [{ match: { pathPrefix: '/search' }, requestsPerSecond: 1 }, { match: { pathPrefix: '/s' }, requestsPerSecond: 2 }],
    }, c);
    const admit = (path: string) => limit.admit('web', 'GET', path, {}, 'catalog');
    expect(admit('/search/a')).toBeNull();
    expect(admit('/search/b')).toEqual({ limit: { requestsPerSecond: 1, burst: 1 }, source: undefined, route: 0, waitMs: 1000 });
    expect([admit('/shop'), admit('/shop')]).toEqual([null, null]);
    expect(admit('/shop')).toMatchObject({ route: 1 });
    // The total's bucket is untouched by routed requests, but web's own is not: two of its five left.
    expect([admit('/x'), admit('/x'), admit('/x')]).toEqual([null, null, { limit: { requestsPerSecond: 3, burst: 5 }, source: 'web', route: undefined, waitMs: 1000 / 3 }]);
  });

  it('reads request headers only when a route matches on them', () => {
    const c = clock();
    expect(limitOf({ routes: [{ match: { pathPrefix: '/a', headers: { host: 'x' } }, requestsPerSecond: 1 }] }, c).usesHeaders).toBe(false);
    const byHeader = limitOf({ routes: [{ match: { headers: { 'x-tenant': 'free' } }, requestsPerSecond: 1 }] }, c);
    expect(byHeader.usesHeaders).toBe(true);
    expect(byHeader.admit('web', 'GET', '/', { 'x-tenant': 'free' }, 'catalog')).toBeNull();
    expect(byHeader.admit('web', 'GET', '/', { 'x-tenant': 'free' }, 'catalog')).toMatchObject({ route: 0 });
    expect(byHeader.admit('web', 'GET', '/', { 'x-tenant': 'paid' }, 'catalog')).toBeNull();
  });

  it('has no per-caller buckets without perSource or sources', () => {
    const c = clock();
    const limit = limitOf({ requestsPerSecond: 2 }, c);
    expect(admittedFrom(limit, 'web', 5) + admittedFrom(limit, 'orders', 5)).toBe(2);
  });
});
