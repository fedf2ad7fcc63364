import { describe, expect, it } from 'vitest';
import { OtlpEndpointError, tracesUrl } from './otlp-endpoint.js';

describe('tracesUrl', () => {
  it('finds /v1/traces under an http(s) endpoint', () => {
    expect(tracesUrl('http://jaeger:4318')).toBe('http://jaeger:4318/v1/traces');
    expect(tracesUrl('http://c:4318/v1/traces/')).toBe('http://c:4318/v1/traces');
    expect(tracesUrl('HTTPS://[::1]:4318/otlp/')).toBe('HTTPS://[::1]:4318/otlp/v1/traces');
  });

  it('refuses what undici could not post to (it would throw from the flush timer), saying why', () => {
    const cases: [string, RegExp][] = [
      ['localhost:4318', /^"localhost:4318" is not an http:\/\/ or https:\/\/ URL \(use e\.g\. http:\/\/127\.0\.0\.1:4318\)$/],
      ['not a url', /is not an http:\/\/ or https:\/\/ URL/],
      ['ftp://collector/traces', /is not an http:\/\/ or https:\/\/ URL/],
      ['http:/127.0.0.1:4318', /is not an http:\/\/ or https:\/\/ URL/],
      ['http://127.0.0.1:99999', /^"http:\/\/127\.0\.0\.1:99999" is not a URL/],
      ['http://a b:4318', /is not a URL/],
      ['http://', /is not a URL/],
      ['http://c:4318/?tenant=1', /has a query or fragment/],
      ['http://c:4318/#x', /has a query or fragment/],
    ];
    for (const [endpoint, message] of cases) {
      let thrown: unknown;
      try {
        tracesUrl(endpoint);
      } catch (err) {
        thrown = err;
      }
      expect(thrown, endpoint).toBeInstanceOf(OtlpEndpointError);
      expect((thrown as OtlpEndpointError).message, endpoint).toMatch(message);
      expect((thrown as OtlpEndpointError).endpoint).toBe(endpoint);
    }
  });
});
