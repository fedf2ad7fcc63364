import { describe, expect, it } from 'vitest';
import { parseSnapshot } from './parse.js';
import type { SnapshotInput } from './schema.js';
import { lackedFeatures, runsWithoutAs, SNAPSHOT_FEATURES, snapshotWithout } from './snapshot-features.js';

const endpoints = [{ address: '10.0.0.1', port: 8080, labels: { version: 'v1' } }];

const snapshot: SnapshotInput = {
  version: '42',
  services: {
    catalog: { lb: 'ring-hash', hashOn: { header: 'x-user' }, endpoints },
    orders: { timeout: '2s', rateLimit: { requestsPerSecond: 100 }, endpoints },
    payments: { onlyPassing: true, lb: 'round-robin', endpoints },
    users: { onlyPassing: false, endpoints },
  },
  routes: {
    catalog: [
      { name: 'v2-api', match: { pathPrefix: '/api/v2/' }, rewrite: { pathPrefix: '/v2/', host: 'catalog.internal' }, responseHeaders: { remove: ['server'] }, split: { v1: 100 } },
      { split: { v1: 100 } },
    ],
    orders: [{ requestHeaders: { set: { 'x-api': 'v2' } }, split: { v1: 100 } }],
  },
};

/** What a sidecar built before every listed feature refuses in `s`: its schema has none of these fields, nor lb ring-hash. */
function baselineRefuses(s: SnapshotInput): string[] {
  return [
    ...Object.entries(s.services ?? {}).flatMap(([name, p]) => [
      ...(['hashOn', 'rateLimit', 'onlyPassing'] as const).filter((f) => p[f] !== undefined).map((f) => `${name}.${f}`),
      ...(p.lb === 'ring-hash' ? [`${name}.lb`] : []),
    ]),
    ...Object.entries(s.routes ?? {}).flatMap(([name, rules]) =>
      rules.flatMap((r, i) => (['rewrite', 'requestHeaders', 'responseHeaders'] as const).filter((f) => r[f] !== undefined).map((f) => `${name}[${i}].${f}`)),
    ),
  ];
}

describe('lackedFeatures', () => {
  it('is every listed feature for a sidecar that names none (one built before the list), and ignores names this build does not know', () => {
    expect(lackedFeatures([])).toEqual([...SNAPSHOT_FEATURES]);
    expect(lackedFeatures(['rate-limit', 'from-the-future'])).toEqual(['ring-hash', 'only-passing', 'route-changes', 'retry-status-codes', 'l7-intentions', 'failover']);
    expect(lackedFeatures(SNAPSHOT_FEATURES)).toEqual([]);
  });
});

describe('snapshotWithout', () => {
  it('gives a sidecar that understands every feature the snapshot itself', () => {
    const variant = snapshotWithout(snapshot, []);
    expect(variant.snapshot).toBe(snapshot);
    expect(variant.leftOut).toEqual([]);
  });

  it('drops ring-hash, rateLimit, onlyPassing and route rules\' changes for a sidecar that lacks them, keeping everything else and the version', () => {
    const { snapshot: sent, leftOut } = snapshotWithout(snapshot, lackedFeatures([]));
    expect(baselineRefuses(snapshot)).toHaveLength(8);
    expect(baselineRefuses(sent)).toEqual([]);
    expect(sent.version).toBe('42');
    expect(sent.services).toEqual({
      catalog: { endpoints },
      orders: { timeout: '2s', endpoints },
      payments: { lb: 'round-robin', endpoints },
      users: { endpoints },
    });
    expect(sent.routes).toEqual({
      catalog: [{ name: 'v2-api', match: { pathPrefix: '/api/v2/' }, split: { v1: 100 } }, { split: { v1: 100 } }],
      orders: [{ split: { v1: 100 } }],
    });
    expect(sent.routes!.catalog![1]).toBe(snapshot.routes!.catalog![1]);
    // The current schema still takes it, with the default balancer and no limit.
    const parsed = parseSnapshot(sent);
    expect(parsed.services.catalog!.lb).toBe('least-request');
    expect(parsed.services.orders!.rateLimit).toBeUndefined();
    expect(leftOut).toEqual([
      { feature: 'ring-hash', service: 'catalog', changes: 'callers', means: 'catalog: balanced by least-request, not ring-hash on header x-user, so requests lose their affinity' },
      { feature: 'rate-limit', service: 'orders', changes: 'instances', means: 'orders: not rate limited by this instance' },
      {
        feature: 'route-changes',
        service: 'catalog',
        changes: 'callers',
        means: 'catalog: rule v2-api forwards the request and passes the answer back as they are, without its path rewrite to /v2/, Host rewrite to catalog.internal, response header changes',
      },
      { feature: 'route-changes', service: 'orders', changes: 'callers', means: 'orders: rule rule-0 forwards the request and passes the answer back as they are, without its request header changes' },
    ]);
  });

  it('leaves the input as it was', () => {
    const before = JSON.stringify(snapshot);
    snapshotWithout(snapshot, lackedFeatures([]));
    expect(JSON.stringify(snapshot)).toBe(before);
  });

  it('drops only what the sidecar lacks', () => {
    const { snapshot: sent, leftOut } = snapshotWithout(snapshot, ['rate-limit']);
    expect(sent.services!.catalog).toBe(snapshot.services!.catalog);
    expect(sent.services!.orders).toEqual({ timeout: '2s', endpoints });
    expect(sent.routes).toBe(snapshot.routes);
    expect(leftOut.map((l) => l.feature)).toEqual(['rate-limit']);
  });

  it('drops onlyPassing, true or false (an older schema refuses the field), without counting it as lost: the endpoints pushed leave instances in warning out already', () => {
    const { snapshot: sent, leftOut } = snapshotWithout({ services: { users: { onlyPassing: false }, payments: { onlyPassing: true } } }, ['only-passing']);
    expect(sent.services).toEqual({ users: {}, payments: {} });
    expect(leftOut).toEqual([]);
  });

  it('names the cookie or query parameter a ring-hash service hashes', () => {
    const means = (hashOn: { cookie: string } | { query: string }) => snapshotWithout({ services: { cart: { lb: 'ring-hash', hashOn } } }, ['ring-hash']).leftOut[0]!.means;
    expect(means({ cookie: 'sid' })).toBe('cart: balanced by least-request, not ring-hash on cookie sid, so requests lose their affinity');
    expect(means({ query: 'user' })).toBe('cart: balanced by least-request, not ring-hash on query parameter user, so requests lose their affinity');
  });

  it("drops the status codes of a service's and a rule's retries, keeping their named conditions and the rest, for a sidecar without retry-status-codes", () => {
    const retrying: SnapshotInput = {
      services: {
        catalog: { retries: { attempts: 3, on: ['connect-failure', 'reset', 503, 429], backoff: { base: '10ms' } }, endpoints },
        orders: { retries: { on: ['5xx'] }, endpoints },
        users: { retries: { on: [429] }, endpoints },
      },
      routes: { catalog: [{ name: 'conflicts', retries: { on: [409, 'gateway-error'] }, split: { v1: 100 } }, { retries: { on: ['reset'] }, split: { v1: 100 } }, { retries: { attempts: 1, on: [429] } }] },
    };
    const before = JSON.stringify(retrying);
    const { snapshot: sent, leftOut } = snapshotWithout(retrying, ['retry-status-codes']);
    expect(JSON.stringify(retrying)).toBe(before);
    expect(sent.services).toEqual({
      catalog: { retries: { attempts: 3, on: ['connect-failure', 'reset'], backoff: { base: '10ms' } }, endpoints },
      orders: { retries: { on: ['5xx'] }, endpoints },
      // Only numbers: such a sidecar retries nothing here, as it would retry none of those statuses.
      users: { retries: { on: [] }, endpoints },
    });
    expect(sent.services!.orders).toBe(retrying.services!.orders);
    expect(sent.routes!.catalog).toEqual([{ name: 'conflicts', retries: { on: ['gateway-error'] }, split: { v1: 100 } }, { retries: { on: ['reset'] }, split: { v1: 100 } }, { retries: { attempts: 1, on: [] } }]);
    expect(sent.routes!.catalog![1]).toBe(retrying.routes!.catalog![1]);
    expect(leftOut).toEqual([
      { feature: 'retry-status-codes', service: 'catalog', changes: 'callers', means: 'catalog: does not retry 503, 429' },
      { feature: 'retry-status-codes', service: 'users', changes: 'callers', means: 'users: does not retry 429' },
      { feature: 'retry-status-codes', service: 'catalog', changes: 'callers', means: 'catalog: rule conflicts does not retry 409' },
      { feature: 'retry-status-codes', service: 'catalog', changes: 'callers', means: 'catalog: rule rule-2 does not retry 429' },
    ]);
    // What is sent has no number left in any on, which a sidecar built before the feature refuses.
    expect(JSON.stringify(sent)).not.toMatch(/"on":\[([^\]]*,)?\d/);
    expect(JSON.stringify(retrying)).toMatch(/"on":\[([^\]]*,)?\d/);
    expect(parseSnapshot(sent).services.catalog!.retries.on).toEqual(['connect-failure', 'reset']);
    expect(snapshotWithout(retrying, ['ring-hash']).snapshot).toBe(retrying);
  });

  it('copies nothing for a snapshot that uses none of what the sidecar lacks', () => {
    const plain: SnapshotInput = { services: { catalog: { endpoints } }, routes: {} };
    expect(snapshotWithout(plain, lackedFeatures([])).snapshot).toBe(plain);
  });

  it('is never larger than the snapshot', () => {
    const full = JSON.stringify(snapshot);
    expect(JSON.stringify(snapshotWithout(snapshot, lackedFeatures([])).snapshot).length).toBeLessThan(full.length);
  });
});

describe('snapshotWithout for a sidecar without l7-intentions', () => {
  const withPermissions: SnapshotInput = {
    version: '7',
    intentions: {
      defaultAction: 'allow',
      rules: [
        { source: 'gateway', destination: 'orders', permissions: [{ action: 'allow', http: { pathPrefix: '/orders', method: ['GET'] } }] },
        { source: 'admin', destination: 'orders', action: 'allow' },
        { source: '*', destination: '*', permissions: [{ action: 'deny', http: { pathPrefix: '/admin/' } }] },
      ],
    },
  };

  it('turns a rule with permissions into a deny in its place (fail closed), each listed as changing its destination\'s instances', () => {
    const { snapshot: sent, leftOut } = snapshotWithout(withPermissions, ['l7-intentions']);
    expect(sent.version).toBe('7');
    expect(sent.intentions).toEqual({
      defaultAction: 'allow',
      rules: [
        { source: 'gateway', destination: 'orders', action: 'deny' },
        { source: 'admin', destination: 'orders', action: 'allow' },
        { source: '*', destination: '*', action: 'deny' },
      ],
    });
    expect(sent.intentions!.rules![1]).toBe(withPermissions.intentions!.rules![1]);
    expect(leftOut).toEqual([
      { feature: 'l7-intentions', service: 'orders', changes: 'instances', means: "orders: denies every call from gateway (its intention's HTTP permissions need a newer sidecar)" },
      { feature: 'l7-intentions', service: '*', changes: 'instances', means: "every service: denies every call from any service (its intention's HTTP permissions need a newer sidecar)" },
    ]);
    // What the older schema takes: every rule with an action, none with permissions.
    expect(sent.intentions!.rules!.every((r) => r.action !== undefined && r.permissions === undefined)).toBe(true);
    expect(parseSnapshot(sent).intentions!.rules).toHaveLength(3);
    expect(JSON.stringify(sent).length).toBeLessThan(JSON.stringify(withPermissions).length);
  });

  it('leaves the input as it was, and copies nothing where no rule has permissions or the sidecar understands them', () => {
    const before = JSON.stringify(withPermissions);
    snapshotWithout(withPermissions, lackedFeatures([]));
    expect(JSON.stringify(withPermissions)).toBe(before);
    expect(snapshotWithout(withPermissions, ['rate-limit']).snapshot).toBe(withPermissions);
    const l4: SnapshotInput = { intentions: { rules: [{ source: 'gateway', destination: 'orders', action: 'allow' }] } };
    expect(snapshotWithout(l4, ['l7-intentions']).snapshot).toBe(l4);
  });
});

describe('snapshotWithout for a sidecar without failover', () => {
  const withFailover: SnapshotInput = {
    services: {
      catalog: { timeout: '2s', failover: { v2: [{ subset: 'v1' }], '*': [{ service: 'catalog-dr' }] }, endpoints },
      'catalog-dr': { endpoints },
    },
  };

  it("drops a service's failover lists, each service's loss seen by its callers, and keeps the rest of its policy", () => {
    const { snapshot: sent, leftOut } = snapshotWithout(withFailover, ['failover']);
    expect(sent.services).toEqual({ catalog: { timeout: '2s', endpoints }, 'catalog-dr': withFailover.services!['catalog-dr'] });
    expect(leftOut).toEqual([
      { feature: 'failover', service: 'catalog', changes: 'callers', means: 'catalog: no failover (v2, *): a subset with no healthy endpoint is answered 503 no-healthy-endpoints' },
    ]);
    expect(runsWithoutAs('web', leftOut)).toEqual([leftOut[0]!.means]);
  });

  it('copies nothing for a sidecar that understands it', () => {
    expect(snapshotWithout(withFailover, lackedFeatures(SNAPSHOT_FEATURES)).snapshot).toBe(withFailover);
  });
});

describe('runsWithoutAs', () => {
  it('gives a sidecar every loss its callers see, and what only instances see where they are its service\'s or every service\'s', () => {
    const { leftOut } = snapshotWithout(
      {
        ...snapshot,
        intentions: { rules: [{ source: 'gateway', destination: 'orders', permissions: [{ action: 'allow', http: { method: 'GET' } }] }, { source: 'users', destination: '*', permissions: [{ action: 'deny', http: { path: '/x' } }] }] },
      },
      lackedFeatures([]),
    );
    const everyCaller = [
      'catalog: balanced by least-request, not ring-hash on header x-user, so requests lose their affinity',
      'catalog: rule v2-api forwards the request and passes the answer back as they are, without its path rewrite to /v2/, Host rewrite to catalog.internal, response header changes',
      'orders: rule rule-0 forwards the request and passes the answer back as they are, without its request header changes',
    ];
    const everyService = "every service: denies every call from users (its intention's HTTP permissions need a newer sidecar)";
    expect(runsWithoutAs('payments', leftOut)).toEqual([...everyCaller, everyService]);
    expect(runsWithoutAs('orders', leftOut)).toEqual([
      everyCaller[0],
      'orders: not rate limited by this instance',
      ...everyCaller.slice(1),
      "orders: denies every call from gateway (its intention's HTTP permissions need a newer sidecar)",
      everyService,
    ]);
  });
});
