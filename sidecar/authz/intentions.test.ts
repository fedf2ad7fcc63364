import { describe, expect, it } from 'vitest';
import { intentions } from '../../common/config/schema.js';
import { compileIntentions, decidesPerRequest, deniedDetail, type IntentionDecision, type PairVerdict } from './intentions.js';

const compile = (input: unknown) => compileIntentions(intentions.parse(input));

/** The decision for one request: the pair's, or its rule's permissions' on the request. */
function decideRequest(verdict: PairVerdict, method: string, path: string, headers: Record<string, string> = {}): IntentionDecision {
  return decidesPerRequest(verdict) ? verdict.decide(method, path, headers, 'orders') : verdict;
}

describe('compileIntentions', () => {
  it('allows everything when the snapshot has no intentions', () => {
    expect(compileIntentions(undefined)('anyone', 'orders')).toEqual({ allowed: true });
  });

  it('takes the first matching rule, not the most specific one', () => {
    const evaluate = compile({
      defaultAction: 'allow',
      rules: [
        { source: '*', destination: 'payments', action: 'deny' },
        { source: 'orders', destination: 'payments', action: 'allow' },
      ],
    });
    expect(evaluate('orders', 'payments')).toEqual({ allowed: false, rule: 0 });
    expect(evaluate('orders', 'catalog')).toEqual({ allowed: true });
  });

  it('matches wildcards on either side and falls back to the default action', () => {
    const evaluate = compile({
      rules: [
        { source: 'gateway', destination: '*', action: 'allow' },
        { source: '*', destination: 'catalog', action: 'allow' },
      ],
    });
    expect(evaluate('gateway', 'orders')).toEqual({ allowed: true, rule: 0 });
    expect(evaluate('orders', 'catalog')).toEqual({ allowed: true, rule: 1 });
    expect(evaluate('orders', 'payments')).toEqual({ allowed: false });
  });

  it('gives a caller without an identity only the default action, even against `*` rules', () => {
    const evaluate = compile({ defaultAction: 'deny', rules: [{ source: '*', destination: '*', action: 'allow' }] });
    expect(evaluate(undefined, 'orders')).toEqual({ allowed: false });
    expect(evaluate('users', 'orders')).toEqual({ allowed: true, rule: 0 });
  });

  it('answers the same after memoising a decision', () => {
    const evaluate = compile({ defaultAction: 'deny', rules: [{ source: 'a', destination: 'b', action: 'allow' }] });
    for (let i = 0; i < 3; i++) {
      expect(evaluate('a', 'b')).toEqual({ allowed: true, rule: 0 });
      expect(evaluate('b', 'a')).toEqual({ allowed: false });
    }
  });
});

describe('intention rules with HTTP permissions', () => {
  const evaluate = compile({
    defaultAction: 'deny',
    rules: [
      {
        source: 'gateway',
        destination: 'orders',
        permissions: [
          { action: 'deny', http: { pathPrefix: '/orders/', method: 'DELETE' } },
          { action: 'allow', http: { pathPrefix: '/orders', method: ['GET', 'POST'] } },
          { action: 'allow', http: { pathRegex: '/reports/[0-9]+', headers: { 'x-team': { prefix: 'fin' } } } },
        ],
      },
      { source: 'admin', destination: 'orders', action: 'allow' },
      { source: '*', destination: 'orders', action: 'allow' },
    ],
  });

  it('decides a pair governed by permissions per request: the first permission that matches', () => {
    const verdict = evaluate('gateway', 'orders');
    expect(decidesPerRequest(verdict)).toBe(true);
    expect(decideRequest(verdict, 'GET', '/orders/1')).toEqual({ allowed: true, rule: 0, permission: 1 });
    expect(decideRequest(verdict, 'POST', '/orders')).toEqual({ allowed: true, rule: 0, permission: 1 });
    expect(decideRequest(verdict, 'DELETE', '/orders/1')).toEqual({ allowed: false, rule: 0, permission: 0 });
    expect(decideRequest(verdict, 'GET', '/reports/7', { 'x-team': 'finance' })).toEqual({ allowed: true, rule: 0, permission: 2 });
  });

  it('gives a request no permission matches the default action, not a later rule that matches the pair', () => {
    const verdict = evaluate('gateway', 'orders');
    // `* -> orders` allows, but rule 0 governs gateway's calls: the default action (deny) decides.
    expect(decideRequest(verdict, 'PUT', '/orders/1')).toEqual({ allowed: false, rule: 0, unmatched: true });
    expect(decideRequest(verdict, 'GET', '/reports/7', { 'x-team': 'ops' })).toEqual({ allowed: false, rule: 0, unmatched: true });
    expect(decideRequest(verdict, 'GET', '/reports/7')).toEqual({ allowed: false, rule: 0, unmatched: true });
    // Methods are matched as sent (case-sensitive), as route matches are.
    expect(decideRequest(verdict, 'get', '/orders/1')).toEqual({ allowed: false, rule: 0, unmatched: true });
    const allowing = compile({ defaultAction: 'allow', rules: [{ source: 'gateway', destination: 'orders', permissions: [{ action: 'deny', http: { path: '/admin' } }] }] });
    expect(decideRequest(allowing('gateway', 'orders'), 'GET', '/orders')).toEqual({ allowed: true, rule: 0, unmatched: true });
    expect(decideRequest(allowing('gateway', 'orders'), 'GET', '/admin')).toEqual({ allowed: false, rule: 0, permission: 0 });
  });

  it('leaves other pairs to their own L4 rules, decided once per pair', () => {
    expect(evaluate('admin', 'orders')).toEqual({ allowed: true, rule: 1 });
    expect(evaluate('users', 'orders')).toEqual({ allowed: true, rule: 2 });
    expect(decidesPerRequest(evaluate('admin', 'orders'))).toBe(false);
    // The memo hands back the same object: no work per request for an L4 pair.
    expect(evaluate('admin', 'orders')).toBe(evaluate('admin', 'orders'));
  });

  it('reads headers only when a permission checks one', () => {
    const verdict = evaluate('gateway', 'orders');
    expect(decidesPerRequest(verdict) && verdict.usesHeaders).toBe(true);
    const byPath = compile({ rules: [{ source: 'gateway', destination: 'orders', permissions: [{ action: 'allow', http: { pathPrefix: '/a', headers: { host: 'orders' } } }] }] })('gateway', 'orders');
    expect(decidesPerRequest(byPath) && byPath.usesHeaders).toBe(false);
  });
});

describe('deniedDetail', () => {
  it('names the caller, and the rule and permission that denied it', () => {
    expect(deniedDetail('users', 'orders', { allowed: false, rule: 2 })).toBe('users may not call orders');
    expect(deniedDetail(undefined, 'orders', { allowed: false })).toBe('a caller without identity may not call orders');
    expect(deniedDetail('gateway', 'orders', { allowed: false, rule: 0, permission: 1 })).toBe('gateway may not call orders: intention rule 0 permission 1 denies the request');
    expect(deniedDetail('gateway', 'orders', { allowed: false, rule: 0, unmatched: true })).toBe('gateway may not call orders: no permission of intention rule 0 matches the request, and the default action denies it');
  });
});
