import { describe, expect, it } from 'vitest';
import { compileRetryOn, isRetryableMethod, retryReason } from './retry-decision.js';

const defaults = compileRetryOn(['connect-failure', 'reset', 'gateway-error']);

describe('retryReason', () => {
  it('retries the default conditions for idempotent methods', () => {
    const get = isRetryableMethod('GET', false);
    expect(retryReason(defaults, 'connect-failure', 0, -1, get, false)).toBe('connect-failure');
    expect(retryReason(defaults, 'reset', 0, -1, get, true)).toBe('reset');
    expect(retryReason(defaults, 'timeout', 0, -1, get, true)).toBe('timeout');
    for (const status of [502, 503, 504]) expect(retryReason(defaults, 'response', status, -1, get, true)).toBe('gateway-error');
  });

  it('does not retry what the policy does not name', () => {
    const get = isRetryableMethod('GET', false);
    expect(retryReason(defaults, 'response', 500, -1, get, true)).toBeUndefined();
    expect(retryReason(defaults, 'response', 200, -1, get, true)).toBeUndefined();
    expect(retryReason(defaults, 'response', 404, -1, get, true)).toBeUndefined();
    expect(retryReason(compileRetryOn(['gateway-error']), 'connect-failure', 0, -1, get, false)).toBeUndefined();
    expect(retryReason(compileRetryOn(['connect-failure']), 'timeout', 0, -1, get, true)).toBeUndefined();
    expect(retryReason(compileRetryOn([]), 'reset', 0, -1, get, true)).toBeUndefined();
  });

  it('treats 5xx as every 5xx plus connection failures', () => {
    const on = compileRetryOn(['5xx']);
    expect(retryReason(on, 'response', 500, -1, true, true)).toBe('5xx');
    expect(retryReason(on, 'response', 599, -1, true, true)).toBe('5xx');
    // The reason says what the attempt met (skein_retries_total's label), not which condition matched it.
    for (const status of [502, 503, 504]) expect(retryReason(on, 'response', status, -1, true, true)).toBe('gateway-error');
    expect(retryReason(on, 'response', 499, -1, true, true)).toBeUndefined();
    expect(retryReason(on, 'reset', 0, -1, true, true)).toBe('reset');
    expect(retryReason(on, 'connect-failure', 0, -1, true, false)).toBe('connect-failure');
  });

  it('maps gRPC statuses', () => {
    const on = compileRetryOn(['unavailable', 'deadline-exceeded']);
    expect(retryReason(on, 'response', 200, 14, true, true)).toBe('unavailable');
    expect(retryReason(on, 'response', 200, 4, true, true)).toBe('deadline-exceeded');
    expect(retryReason(on, 'response', 200, 13, true, true)).toBeUndefined();
    expect(retryReason(on, 'response', 200, 0, true, true)).toBeUndefined();
    // SPEC §4: "gateway-error = 502,503,504; grpc: unavailable", so the default policy covers gRPC too.
    expect(retryReason(compileRetryOn(['gateway-error']), 'response', 200, 14, true, true)).toBe('unavailable');
    expect(retryReason(compileRetryOn(['gateway-error']), 'response', 200, 4, true, true)).toBeUndefined();
  });

  it('retries a status named by number, and no other: 503 and not 500, a 429 or a 409 as 4xx', () => {
    const on = compileRetryOn(['connect-failure', 503, 429, 409]);
    expect(retryReason(on, 'response', 503, -1, true, true)).toBe('gateway-error');
    expect(retryReason(on, 'response', 429, -1, true, true)).toBe('4xx');
    expect(retryReason(on, 'response', 409, -1, true, true)).toBe('4xx');
    for (const status of [200, 400, 404, 428, 430, 500, 502, 504, 599]) expect(retryReason(on, 'response', status, -1, true, true), String(status)).toBeUndefined();
    expect(retryReason(on, 'response', 200, 14, true, true)).toBeUndefined();
    // A number names a response's status: not the per-try timeout or a reset, which the named conditions cover.
    expect(retryReason(on, 'timeout', 0, -1, true, true)).toBeUndefined();
    expect(retryReason(on, 'reset', 0, -1, true, true)).toBeUndefined();
    expect(retryReason(compileRetryOn([500]), 'response', 500, -1, true, true)).toBe('5xx');
    expect(retryReason(compileRetryOn([400, 599]), 'response', 599, -1, true, true)).toBe('5xx');
    expect(retryReason(compileRetryOn([400, 599]), 'response', 400, -1, true, true)).toBe('4xx');
    // Out of the table's range: never looked up.
    expect(retryReason(compileRetryOn([400, 599]), 'response', 600, -1, true, true)).toBeUndefined();
    expect(retryReason(compileRetryOn([400, 599]), 'response', 399, -1, true, true)).toBeUndefined();
  });

  it('keeps the idempotency rule for statuses: a POST whose 429 came from the upstream is not retried', () => {
    const on = compileRetryOn([429]);
    expect(retryReason(on, 'response', 429, -1, isRetryableMethod('POST', false), true)).toBeUndefined();
    expect(retryReason(on, 'response', 429, -1, isRetryableMethod('POST', true), true)).toBe('4xx');
  });

  it('compiles a list without numbers to no status table, and says when a 4xx is retried at all', () => {
    expect(defaults.statuses).toBeNull();
    expect(defaults.any4xx).toBe(false);
    expect(compileRetryOn(['connect-failure', 503]).any4xx).toBe(false);
    expect(compileRetryOn([429]).any4xx).toBe(true);
  });

  it('retries POST and PATCH only when the request never reached the upstream', () => {
    for (const method of ['POST', 'PATCH']) {
      const replayable = isRetryableMethod(method, false);
      expect(replayable).toBe(false);
      expect(retryReason(defaults, 'connect-failure', 0, -1, replayable, false)).toBe('connect-failure');
      expect(retryReason(defaults, 'response', 503, -1, replayable, true)).toBeUndefined();
      expect(retryReason(defaults, 'reset', 0, -1, replayable, true)).toBeUndefined();
      expect(retryReason(defaults, 'timeout', 0, -1, replayable, true)).toBeUndefined();
      // ...unless the route allows it.
      expect(retryReason(defaults, 'response', 503, -1, isRetryableMethod(method, true), true)).toBe('gateway-error');
    }
    for (const method of ['GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS']) expect(isRetryableMethod(method, false)).toBe(true);
  });

  it('takes only the methods defined idempotent (or safe) as replayable: not extension methods, whose semantics it cannot know', () => {
    // RFC 9110 §9.2.2, and WebDAV's/others' safe methods.
    for (const method of ['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE', 'PROPFIND', 'REPORT', 'SEARCH', 'QUERY']) expect(isRetryableMethod(method, false), method).toBe(true);
    // Not idempotent (MKCOL, LOCK: RFC 4918 §9.3, §9.10), or unknown: a method token is case-sensitive, so `get` is not GET.
    for (const method of ['POST', 'PATCH', 'MKCOL', 'LOCK', 'SUBSCRIBE', 'NOTIFY', 'LINK', 'MERGE', 'CHARGE', 'get', 'post']) {
      expect(isRetryableMethod(method, false), method).toBe(false);
      expect(isRetryableMethod(method, true), method).toBe(true);
    }
  });
});
