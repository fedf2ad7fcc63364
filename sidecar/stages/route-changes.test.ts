import { describe, expect, it } from 'vitest';
import { parseSnapshot } from '../../common/config/parse.js';
import type { RouteRuleInput } from '../../common/config/schema.js';
import { compileHeaderEdit, compileRequestChanges } from './route-changes.js';

function ruleOf(input: RouteRuleInput) {
  return parseSnapshot({ routes: { catalog: [input] } }).routes.catalog![0]!;
}

describe('route changes', () => {
  it('compiles a rule without changes to null', () => {
    const rule = ruleOf({ match: { pathPrefix: '/' }, split: { v1: 100 } });
    expect(compileRequestChanges(rule)).toBeNull();
    expect(compileHeaderEdit(rule.responseHeaders)).toBeNull();
    expect(compileHeaderEdit({ set: {}, remove: [] })).toBeNull();
  });

  it('removes, then sets (every line replaced by one), then adds, whatever the case of the names', () => {
    const edit = compileHeaderEdit({ set: { 'X-Api': 'v2' }, add: { 'x-tag': 'a', 'x-api': 'extra' }, remove: ['x-debug'] })!;
    const headers = ['Host', 'catalog', 'X-API', 'v1', 'x-debug', '1', 'x-api', 'v0', 'X-Debug', '2', 'x-tag', 'caller'];
    edit(headers);
    expect(headers).toEqual(['Host', 'catalog', 'x-tag', 'caller', 'x-api', 'v2', 'x-tag', 'a', 'x-api', 'extra']);
  });

  it('replaces the matched prefix, keeping the rest and the query, and sets the Host', () => {
    const changes = compileRequestChanges(ruleOf({ match: { pathPrefix: '/api/v2/' }, rewrite: { pathPrefix: '/v2/', host: 'catalog.internal' }, requestHeaders: { add: { 'x-tag': 'a' } } }))!;
    const request = { url: '/api/v2/items/7?page=2', headers: ['host', 'catalog', 'accept', '*/*'] };
    changes.apply(request);
    expect(request).toEqual({ url: '/v2/items/7?page=2', headers: ['host', 'catalog.internal', 'accept', '*/*', 'x-tag', 'a'] });
  });

  it('rewrites under a "/" rule, and leaves OPTIONS * as it is', () => {
    const changes = compileRequestChanges(ruleOf({ match: { pathPrefix: '/' }, rewrite: { pathPrefix: '/v2/' } }))!;
    const request = { url: '/items', headers: [] as string[] };
    changes.apply(request);
    expect(request.url).toBe('/v2/items');
    const star = { url: '*', headers: [] as string[] };
    changes.apply(star);
    expect(star.url).toBe('*');
  });

  it('adds a Host to a request that had none', () => {
    const request = { url: '/', headers: ['accept', '*/*'] };
    compileRequestChanges(ruleOf({ rewrite: { host: '10.0.0.7:8080' } }))!.apply(request);
    expect(request.headers).toEqual(['accept', '*/*', 'host', '10.0.0.7:8080']);
  });
});
