import { describe, expect, it } from 'vitest';
import { parseSnapshot } from '../config/parse.js';
import { compileRoutes, compileSplit, explainRequest, matchRoute, pickSplit, selectEndpoints, subsetSelector } from './index.js';

const snapshot = parseSnapshot({
  services: {
    catalog: {
      subsets: { stable: { track: 'stable' } },
      endpoints: [
        { address: '10.0.0.1', port: 1, labels: { version: 'v1', track: 'stable' } },
        { address: '10.0.0.2', port: 2, labels: { version: 'v2' } },
      ],
    },
  },
  routes: {
    catalog: [
      { name: 'canary', match: { pathPrefix: '/api', headers: { 'X-Canary': 'true' } }, split: { v2: 100 } },
      { match: { path: '/exact', method: ['post'] }, split: { stable: 100 } },
      { match: { pathRegex: '/items/[0-9]+', headers: { 'x-user': { prefix: 'u' }, 'x-beta': { present: true } } }, split: { v1: 50, v2: 50 } },
      { match: { pathPrefix: '/' }, split: { v1: 90, v2: 10 } },
    ],
  },
});

describe('route tables', () => {
  const table = compileRoutes(snapshot.routes.catalog);
  it('takes the first matching rule by path, method and headers', () => {
    expect(table.usesHeaders).toBe(true);
    expect(matchRoute(table, 'GET', '/api/x', { 'x-canary': 'true' }, undefined)).toBe(0);
    expect(matchRoute(table, 'GET', '/apix', { 'x-canary': 'false' }, undefined)).toBe(3);
    expect(matchRoute(table, 'POST', '/exact', {}, undefined)).toBe(1);
    expect(matchRoute(table, 'GET', '/exact', {}, undefined)).toBe(3);
    expect(matchRoute(table, 'GET', '/items/12', { 'x-user': 'u1', 'x-beta': '' }, undefined)).toBe(2);
    expect(matchRoute(table, 'GET', '/items/12x', { 'x-user': 'u1', 'x-beta': '' }, undefined)).toBe(3);
    expect(matchRoute(table, 'GET', '/items/12', { 'x-user': 'a1', 'x-beta': '' }, undefined)).toBe(3);
  });

  it('gives a service without rules one catch-all rule over all endpoints', () => {
    const empty = compileRoutes(undefined);
    expect(empty.rules).toHaveLength(1);
    expect(matchRoute(empty, 'DELETE', '/anything', undefined, undefined)).toBe(0);
    expect(empty.rules[0]!.split.subsets).toEqual(['*']);
  });
});

describe('weighted split', () => {
  it('picks deterministically from the random number and never picks zero weights', () => {
    const split = compileSplit({ v1: 90, v0: 0, v2: 10 });
    expect(pickSplit(split, 0)).toBe(0);
    expect(pickSplit(split, 0.8999)).toBe(0);
    expect(pickSplit(split, 0.9)).toBe(2);
    expect(pickSplit(split, 0.99999)).toBe(2);
  });
});

describe('subsets', () => {
  const policy = snapshot.services.catalog!;
  it('selects declared subsets by labels and undeclared ones by version', () => {
    expect(selectEndpoints(subsetSelector(policy, 'stable'), policy.endpoints!).map((e) => e.port)).toEqual([1]);
    expect(selectEndpoints(subsetSelector(policy, 'v2'), policy.endpoints!).map((e) => e.port)).toEqual([2]);
    expect(selectEndpoints(subsetSelector(policy, '*'), policy.endpoints!)).toHaveLength(2);
  });
});

describe('explain', () => {
  it('names the matching rule, why earlier rules failed, and the split', () => {
    const e = explainRequest(snapshot, { service: 'catalog', method: 'GET', path: '/x?q=1', headers: {} });
    expect(e.matched).toMatchObject({ index: 3, name: 'rule-3' });
    expect(e.skipped[0]!.reasons).toEqual(['path /x does not start with /api', 'header x-canary missing']);
    expect(e.skipped[1]!.reasons).toEqual(['path /x is not /exact', 'method GET is not POST']);
    expect(e.split.map((s) => [s.subset, s.weight, s.endpoints?.map((x) => x.port)])).toEqual([
      ['v1', 90, [1]],
      ['v2', 10, [2]],
    ]);
    expect(explainRequest(snapshot, { service: 'nope', method: 'GET', path: '/' }).known).toBe(false);
  });

  it('gives each subset of the split its failover targets, in order, with their endpoints, and those the sidecars leave out', () => {
    const withFailover = parseSnapshot({
      services: {
        catalog: {
          subsets: { v3: { version: 'v3' } },
          failover: { v3: [{ subset: 'v1' }, { service: 'orders' }, { service: 'catalog-dr' }, { service: 'grpc-dr' }] },
          endpoints: [{ address: '10.0.0.1', port: 1, labels: { version: 'v1' } }],
        },
        'catalog-dr': { endpoints: [{ address: '10.0.0.9', port: 9, labels: {} }] },
        'grpc-dr': { protocol: 'grpc' },
      },
      routes: { catalog: [{ split: { v3: 50, v1: 50 } }] },
    });
    const [v3, v1] = explainRequest(withFailover, { service: 'catalog', method: 'GET', path: '/' }).split;
    expect(v3!.endpoints).toEqual([]);
    expect(v3!.failover!.map((f) => [f.service, f.subset, f.endpoints?.map((e) => e.port)])).toEqual([
      ['catalog', 'v1', [1]],
      ['catalog-dr', '*', [9]],
    ]);
    // Left out by the sidecars, and said so.
    expect(v3!.failoverSkipped).toEqual([
      { service: 'orders', subset: '*', why: 'orders is not in the snapshot' },
      { service: 'grpc-dr', subset: '*', why: 'grpc-dr speaks grpc, catalog http' },
    ]);
    expect(v1).not.toHaveProperty('failover');
    expect(v1).not.toHaveProperty('failoverSkipped');
  });

  it('matches the path a sidecar routes (normalised), and says when a sidecar refuses it', () => {
    // /api/../x is /x to the sidecar: not the /api rule, whatever the raw text starts with.
    const climbed = explainRequest(snapshot, { service: 'catalog', method: 'GET', path: '/api/../x?q=1', headers: { 'x-canary': 'true' } });
    expect(climbed.path).toBe('/x');
    expect(climbed.skipped[0]!.reasons).toEqual(['path /x does not start with /api']);
    expect(explainRequest(snapshot, { service: 'catalog', method: 'GET', path: '/x/%2e%2e/api//v1', headers: { 'x-canary': 'true' } })).toMatchObject({ path: '/api/v1', matched: { index: 0 } });
    const refused = explainRequest(snapshot, { service: 'catalog', method: 'GET', path: '/a/..%2Fb' });
    expect(refused.refused).toMatch(/encoded slash/);
    expect(refused.matched).toBeUndefined();
    expect(explainRequest(snapshot, { service: 'catalog', method: 'GET', path: '/public/..;/private' }).refused).toMatch(/parameters|;/);
  });

  it('agrees with the route table on a method, taken as sent (methods are case-sensitive), and on repeated header lines', () => {
    const table = compileRoutes(snapshot.routes.catalog);
    // The rule's `post` means POST; a request sending `post` is another method, for both.
    expect(matchRoute(table, 'post', '/exact', {}, undefined)).toBe(3);
    const lower = explainRequest(snapshot, { service: 'catalog', method: 'post', path: '/exact' });
    expect(lower.matched?.index).toBe(3);
    expect(lower.skipped[1]!.reasons).toEqual(['method post is not POST']);
    expect(explainRequest(snapshot, { service: 'catalog', method: 'POST', path: '/exact' }).matched?.index).toBe(1);

    const users = parseSnapshot({ routes: { catalog: [{ match: { headers: { 'x-user': 'a, b' } }, split: { v2: 100 } }, { split: { v1: 100 } }] } });
    // Two lines of x-user, as node:http and the sidecar's parser show them, and as a list.
    expect(matchRoute(compileRoutes(users.routes.catalog), 'GET', '/', { 'x-user': 'a, b' }, undefined)).toBe(0);
    expect(explainRequest(users, { service: 'catalog', method: 'GET', path: '/', headers: { 'x-user': ['a', 'b'] } }).matched?.index).toBe(0);
  });

  it('matches a host check on the authority the request is forwarded with, not on a host header', () => {
    const byHost = parseSnapshot({ routes: { catalog: [{ match: { headers: { Host: { prefix: 'catalog.service' } } }, split: { v2: 100 } }, { split: { v1: 100 } }] } });
    const table = compileRoutes(byHost.routes.catalog);
    // Decided when compiled: a table whose only header check is on host needs no header map.
    expect(table.usesHeaders).toBe(false);
    expect(matchRoute(table, 'GET', '/', undefined, 'catalog.service.consul')).toBe(0);
    // An absolute-form request's Host received is not what goes on, nor is a host header beside HTTP/2's :authority.
    expect(matchRoute(table, 'GET', '/', { host: 'catalog.service.consul' }, 'catalog')).toBe(1);
    // explain takes a described request's Host as its authority.
    expect(explainRequest(byHost, { service: 'catalog', method: 'GET', path: '/', headers: { Host: 'catalog.service.consul' } }).matched?.index).toBe(0);
    // Described without one, it goes as a sidecar forwards it: with the service's name (no request reaches the rules with none).
    const plain = explainRequest(byHost, { service: 'catalog', method: 'GET', path: '/' });
    expect(plain.matched?.index).toBe(1);
    expect(plain.skipped[0]!.reasons).toEqual(['header host "catalog" does not start with "catalog.service"']);
    expect(matchRoute(table, 'GET', '/', undefined, 'catalog')).toBe(1);
    const absent = parseSnapshot({ routes: { catalog: [{ match: { headers: { host: { present: false } } }, split: { v2: 100 } }, { split: { v1: 100 } }] } });
    expect(explainRequest(absent, { service: 'catalog', method: 'GET', path: '/' }).matched?.index).toBe(1);
  });
});

describe('names that are also Object.prototype members', () => {
  // `constructor` is a DNS label (a service name); `toString` a subset name and version label.
  const odd = parseSnapshot({
    services: {
      web: {},
      backend: {
        endpoints: [
          { address: '10.0.0.1', port: 1, labels: { version: 'v1' } },
          { address: '10.0.0.2', port: 2, labels: { version: 'toString' } },
        ],
      },
    },
    routes: { backend: [{ match: { pathPrefix: '/', headers: { constructor: { present: true } } }, split: { v1: 100 } }, { split: { toString: 100 } }] },
  });

  it('an undeclared subset named toString selects the instances with version=toString, not every instance', () => {
    const policy = odd.services.backend!;
    expect(subsetSelector(policy, 'toString')).toEqual({ version: 'toString' });
    expect(selectEndpoints(subsetSelector(policy, 'toString'), policy.endpoints!).map((e) => e.port)).toEqual([2]);
  });

  it('a service named constructor that the snapshot does not know is explained as unknown (no-route)', () => {
    expect(explainRequest(odd, { service: 'constructor', method: 'GET', path: '/' })).toMatchObject({ known: false, split: [] });
  });

  it('a header named constructor is present only when the request carries it', () => {
    const table = compileRoutes(odd.routes.backend);
    expect(matchRoute(table, 'GET', '/', {}, undefined)).toBe(1);
    expect(matchRoute(table, 'GET', '/', { constructor: 'x' }, undefined)).toBe(0);
    const e = explainRequest(odd, { service: 'backend', method: 'GET', path: '/' });
    expect(e.matched).toMatchObject({ index: 1 });
    // Described with the header, under any case; and `__proto__`, another token, is a header like any other.
    expect(explainRequest(odd, { service: 'backend', method: 'GET', path: '/', headers: Object.fromEntries([['Constructor', 'x'], ['__proto__', 'y']]) }).matched).toMatchObject({ index: 0 });
    expect(e.split).toEqual([expect.objectContaining({ subset: 'toString', selector: { version: 'toString' } })]);
  });
});
