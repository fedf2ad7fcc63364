import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { RateLimitedError, REASONS, SkeinError } from './errors.js';

describe('the x-skein-reason catalogue', () => {
  it('is documented in the README, row for row, with its Proxy-Status error type', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    for (const [reason, { grpc, delivered, proxyError }] of Object.entries(REASONS)) {
      const row = readme.split('\n').find((line) => line.startsWith(`| \`${reason}\` |`));
      expect(row, `README row for ${reason}`).toBeDefined();
      expect(row).toContain(`| ${grpc} `);
      expect(row).toMatch(new RegExp(`\\| ${delivered} \\| \`${proxyError}\` \\|$`));
    }
  });

  it('gives each error its status and gRPC code', () => {
    const err = new SkeinError('timeout');
    expect(err.status).toBe(504);
    expect(err.grpcStatus).toBe(4);
    expect(new SkeinError('fault-injected', undefined, 418).status).toBe(418);
  });

  it('gives a rate-limited answer the seconds until a token as Retry-After, rounded up and at least 1, and names whose limit it was', () => {
    const limit = { requestsPerSecond: 5, burst: 10 };
    const err = new RateLimitedError('catalog', { limit, source: undefined, route: undefined, waitMs: 200 });
    expect([err.status, err.grpcStatus, err.reason]).toEqual([429, 8, 'rate-limited']);
    expect(err.responseHeaders()).toEqual(['retry-after', '1']);
    expect(err.message).toBe('catalog admits 5 requests per second per instance (burst 10): retry after 1s');
    const own = new RateLimitedError('catalog', { limit, source: 'web', route: undefined, waitMs: 2001 });
    expect(own.responseHeaders()).toEqual(['retry-after', '3']);
    expect(own.message).toBe('catalog admits 5 requests per second per instance from web (burst 10): retry after 3s');
    expect(new RateLimitedError('catalog', { limit, source: undefined, route: 1, waitMs: 10 }).message).toBe('catalog admits 5 requests per second per instance on rateLimit.routes[1] (burst 10): retry after 1s');
    expect(new SkeinError('timeout').responseHeaders()).toEqual([]);
  });
});
