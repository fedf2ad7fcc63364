import { describe, expect, it } from 'vitest';
import { parseSnapshot } from '../../common/config/parse.js';
import { explainRequest } from '../../common/routing/index.js';
import { policyInForce } from './explain-routes.js';

const snapshot = parseSnapshot({
  services: { orders: { retries: { attempts: 2, on: ['gateway-error', 'connect-failure'] } } },
  routes: { orders: [{ name: 'replayable', match: { pathPrefix: '/idem' }, retryNonIdempotent: true }, { name: 'rest' }] },
});

const retriedAfterSent = (method: string, path: string) => policyInForce(snapshot, explainRequest(snapshot, { service: 'orders', method, path }), method)?.retriedAfterSent;

describe('the policy explain shows in force', () => {
  it('says whether the request is replayed once it reached the upstream, by its method as the sidecar decides', () => {
    expect(retriedAfterSent('GET', '/x')).toBe(true);
    expect(retriedAfterSent('PUT', '/x')).toBe(true);
    // Not idempotent (RFC 9110 §9.2.2), nor is a lower-case `get` (methods are case-sensitive): only a try that never reached it is retried.
    expect(retriedAfterSent('POST', '/x')).toBe(false);
    expect(retriedAfterSent('PATCH', '/x')).toBe(false);
    expect(retriedAfterSent('get', '/x')).toBe(false);
    // Unless the matched rule says so.
    expect(retriedAfterSent('POST', '/idem')).toBe(true);
  });
});
