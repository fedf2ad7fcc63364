import { describe, expect, it } from 'vitest';
import { ShadowedSplitError, withSplit } from './split-rule.js';
import type { RoutesInput } from './resources.js';

const weights = { v1: 50, v2: 50 };
const refusal = (rules: RoutesInput) => {
  try {
    withSplit('backend', rules, weights);
  } catch (err) {
    if (err instanceof ShadowedSplitError) return err;
    throw err;
  }
  throw new Error('the split was not refused');
};

describe('withSplit', () => {
  it('writes the weights into the first rule every request matches, however its match is spelt', () => {
    for (const match of [undefined, {}, { pathPrefix: '/' }, { headers: {} }, { pathPrefix: '/', headers: {} }]) {
      const rules: RoutesInput = [{ name: 'main', ...(match ? { match } : {}), split: { v1: 100 }, timeout: '2s' }];
      expect(withSplit('backend', rules, weights), JSON.stringify(match)).toEqual([{ ...rules[0], split: weights }]);
    }
    // A second catch-all is unreachable already: the first one takes every request.
    expect(withSplit('backend', [{ split: { v1: 100 } }, { match: { pathPrefix: '/' }, split: { v1: 100 } }], weights)).toEqual([
      { split: weights },
      { match: { pathPrefix: '/' }, split: { v1: 100 } },
    ]);
  });

  it('adds a catch-all rule last when the service has none, and leaves the given rules alone', () => {
    expect(withSplit('backend', undefined, weights)).toEqual([{ match: { pathPrefix: '/' }, split: weights }]);
    const pinned: RoutesInput = [{ match: { headers: { 'x-canary': 'true' } }, split: { v2: 100 } }];
    expect(withSplit('backend', pinned, weights)).toEqual([...pinned, { match: { pathPrefix: '/' }, split: weights }]);
    expect(pinned).toHaveLength(1);
  });

  it('allows rules before it that take only requests carrying a header (testers pinning the canary)', () => {
    const rules: RoutesInput = [
      { match: { pathPrefix: '/', headers: { 'x-canary': 'true' } }, split: { v2: 100 } },
      { match: { method: 'POST', headers: { 'x-beta': { present: true } } }, split: { v2: 100 } },
      { match: { pathPrefix: '/' }, split: { v1: 100 } },
    ];
    expect(withSplit('backend', rules, weights)[2]).toEqual({ match: { pathPrefix: '/' }, split: weights });
  });

  it('refuses when an earlier rule takes ordinary requests, naming it, whether the catch-all exists or would be added', () => {
    // The README's own shape: GET and HEAD are split by rule 1, so a catch-all added after it gets only the other methods.
    const readme: RoutesInput = [
      { match: { pathPrefix: '/', headers: { 'x-canary': 'true' } }, split: { v2: 100 } },
      { match: { pathPrefix: '/', method: ['GET', 'HEAD'] }, split: { v1: 90, v2: 10 } },
    ];
    const appended = refusal(readme);
    expect(appended.shadowing).toEqual([{ index: 1, name: 'rule-1', match: { pathPrefix: '/', method: ['GET', 'HEAD'] } }]);
    expect(appended.target).toBeUndefined();
    expect(appended.message).toBe(
      'a split of backend would not steer all its traffic: rule 1 "rule-1" (match {"pathPrefix":"/","method":["GET","HEAD"]}) comes before the catch-all rule that would be added last (it has none) ' +
        'and takes requests that carry no opt-in header, which would never reach the split; nothing was written. Set the weights in the rules themselves ' +
        '(PUT /api/v1/routes/backend, skein apply), or have that rule match on a header the requests opt in with',
    );

    const shadowed = refusal([
      { name: 'admin', match: { pathPrefix: '/admin' }, split: { v1: 100 } },
      { name: 'no-beta', match: { headers: { 'x-beta': { present: false } } }, split: { v1: 100 } },
      { name: 'main', match: { pathPrefix: '/', headers: {} }, split: { v1: 100 } },
    ]);
    expect(shadowed.shadowing.map((r) => r.name)).toEqual(['admin', 'no-beta']);
    expect(shadowed.target).toEqual({ index: 2, name: 'main' });
    expect(shadowed.message).toMatch(/rule 0 "admin" .*, rule 1 "no-beta" .* come before its catch-all rule 2 "main" and take requests/);
  });
});
