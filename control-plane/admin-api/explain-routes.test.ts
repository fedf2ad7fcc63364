import { describe, expect, it } from 'vitest';
import { parseSnapshot } from '../../common/config/parse.js';
import { explainRequest } from '../../common/routing/index.js';
import { intentionVerdict, policyInForce } from './explain-routes.js';

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

describe('the rewrite explain shows', () => {
  const changed = parseSnapshot({
    routes: { catalog: [{ match: { pathPrefix: '/api/v2/' }, rewrite: { pathPrefix: '/v2/', host: 'catalog.internal' }, requestHeaders: { add: { 'x-tag': 'a' } } }, { name: 'rest' }] },
  });

  it('gives the path the app gets, from the path as the sidecar normalises it, and the rule\'s changes in the policy', () => {
    const explanation = explainRequest(changed, { service: 'catalog', method: 'GET', path: '/api/./v2//items?page=2' });
    expect([explanation.path, explanation.rewrittenPath]).toEqual(['/api/v2/items', '/v2/items']);
    const policy = policyInForce(changed, explanation, 'GET');
    expect([policy?.rewrite, policy?.requestHeaders, policy?.responseHeaders]).toEqual([{ pathPrefix: '/v2/', host: 'catalog.internal' }, { add: { 'x-tag': 'a' } }, undefined]);
  });

  it('gives none for a rule without a rewrite', () => {
    const explanation = explainRequest(changed, { service: 'catalog', method: 'GET', path: '/api/v1/items' });
    expect(explanation.matched?.name).toBe('rest');
    expect(explanation.rewrittenPath).toBeUndefined();
    expect(policyInForce(changed, explanation, 'GET')?.rewrite).toBeUndefined();
  });
});

describe('the intention verdict explain shows for a rule with HTTP permissions', () => {
  const l7 = parseSnapshot({
    routes: { catalog: [{ match: { pathPrefix: '/api/v2/' }, rewrite: { pathPrefix: '/v2/', host: 'catalog.internal' } }, { name: 'rest' }] },
    intentions: {
      defaultAction: 'deny',
      rules: [{ source: 'web', destination: 'catalog', permissions: [{ action: 'allow', http: { pathPrefix: '/v2/', headers: { host: 'catalog.internal' } } }] }],
    },
  });
  const verdict = (path: string, source = 'web') => {
    const explanation = explainRequest(l7, { service: 'catalog', method: 'GET', path });
    return intentionVerdict(l7, source, explanation, {}, 'GET', policyInForce(l7, explanation, 'GET'));
  };
  const rule = { index: 0, source: 'web', destination: 'catalog' };

  it('matches the permissions on the path and Host the destination\'s sidecar gets: after the route rule\'s rewrite', () => {
    expect(verdict('/api/v2/items')).toEqual({ source: 'web', allowed: true, decidedBy: 'permission', rule, permission: { index: 0, action: 'allow' } });
  });

  it('says why no permission matches, and that the default action decides', () => {
    expect(verdict('/v2/items')).toEqual({
      source: 'web',
      allowed: false,
      decidedBy: 'defaultAction',
      rule,
      unmatchedPermissions: [{ index: 0, reasons: ['header host is "catalog", not "catalog.internal"'] }],
    });
    expect(verdict('/v2/items', 'shop')).toEqual({ source: 'shop', allowed: false, decidedBy: 'defaultAction' });
  });
});

describe('the intention verdict for a rule whose route changes request headers', () => {
  const changed = parseSnapshot({
    routes: { orders: [{ match: { pathPrefix: '/admin/' }, requestHeaders: { set: { 'x-role': 'ops' }, remove: ['x-debug'] } }, { name: 'rest' }] },
    intentions: {
      defaultAction: 'deny',
      rules: [
        {
          source: 'web',
          destination: 'orders',
          permissions: [
            { action: 'deny', http: { headers: { 'x-debug': { present: true } } } },
            { action: 'allow', http: { headers: { 'x-role': 'ops' } } },
          ],
        },
      ],
    },
  });
  const verdict = (path: string, headers: Record<string, string>) => {
    const explanation = explainRequest(changed, { service: 'orders', method: 'GET', path, headers });
    return intentionVerdict(changed, 'web', explanation, headers, 'GET', policyInForce(changed, explanation, 'GET'));
  };

  it('matches the permissions on the headers the destination\'s sidecar gets: set and removed by the rule', () => {
    expect(verdict('/admin/x', { 'x-role': 'guest', 'x-debug': '1' })).toMatchObject({ allowed: true, decidedBy: 'permission', permission: { index: 1, action: 'allow' } });
    // Another rule changes nothing: the caller's own headers are judged.
    expect(verdict('/other', { 'x-role': 'ops', 'x-debug': '1' })).toMatchObject({ allowed: false, decidedBy: 'permission', permission: { index: 0, action: 'deny' } });
  });
});
