/**
 * A reload's effect on the runtimes requests already hold: the subset a request chose is
 * linked to the one that replaced it (retries follow the link), and endpoints a reload
 * removed are marked so, their pools closed. And, where discovery is deferred until a
 * destination's first request, which destinations are watched when.
 */
import { pino } from 'pino';
import type { Dispatcher } from 'undici';
import { describe, expect, it } from 'vitest';
import { parseSnapshot } from '../../common/config/parse.js';
import type { SnapshotInput } from '../../common/config/schema.js';
import { StaticEndpointSource } from '../discovery/static.js';
import { UntilAnsweredSource } from '../discovery/until-answered.js';
import { ManualEndpointSource } from '../../test/support/manual-endpoint-source.js';
import { SidecarMetrics } from '../telemetry/metrics.js';
import { Mesh } from './mesh.js';
import { latestSubset } from './service-runtime.js';
import { EndpointPools } from './upstream-endpoint.js';

function meshWithPools() {
  const closed: string[] = [];
  /** Requests sent on the pools, by endpoint: mirror copies, which never get an answer. */
  const requests: string[] = [];
  const pools = new EndpointPools(
    (_service, address, port) =>
      ({ close: async () => void closed.push(`${address}:${port}`), request: () => (requests.push(`${address}:${port}`), new Promise(() => {})) }) as unknown as Dispatcher,
  );
  const endpoints = new StaticEndpointSource();
  const mesh = new Mesh({ self: 'web', endpointSource: endpoints, pools, metrics: new SidecarMetrics(), logger: pino({ level: 'silent' }) });
  const install = (version: string, ports: number[], routes: SnapshotInput['routes'] = {}): void => {
    const snapshot = parseSnapshot({ version, services: ports.length === 0 ? {} : { catalog: { endpoints: ports.map((port, i) => ({ address: '127.0.0.1', port, labels: { version: `v${i + 1}` } })) } }, routes });
    endpoints.update(snapshot);
    mesh.install(snapshot);
  };
  return { mesh, install, closed, requests };
}

describe('Mesh across a reload', () => {
  it('links the subset a request holds to its replacement, which lacks the removed endpoint', () => {
    const { mesh, install, closed } = meshWithPools();
    install('1', [1001, 1002]);
    const [name, held] = [...mesh.service('catalog')!.subsets][0]!;
    expect(held.successor).toBeNull();

    install('2', [1001]);
    const current = mesh.service('catalog')!.subsets.get(name)!;
    expect(latestSubset(held)).toBe(current);
    expect(current.endpoints.map((e) => e.key)).toEqual(['127.0.0.1:1001']);
    const removed = held.endpoints.find((e) => e.port === 1002)!;
    expect(removed.removed).toBe(true);
    expect(closed).toEqual(['127.0.0.1:1002']);
    // The endpoint that stays is the same object, pool and all.
    expect(current.endpoints[0]).toBe(held.endpoints.find((e) => e.port === 1001));
    expect(current.endpoints[0]!.removed).toBe(false);
  });

  it('leaves a dropped service\'s subsets with no endpoint to go to, theirs removed', () => {
    const { mesh, install } = meshWithPools();
    install('1', [1001]);
    const held = [...mesh.service('catalog')!.subsets.values()][0]!;
    install('2', []);
    expect(mesh.service('catalog')).toBeUndefined();
    // Static discovery empties the service before the snapshot drops it: a retry finds no endpoint (no-healthy-endpoints).
    expect(latestSubset(held).endpoints).toEqual([]);
    expect(held.endpoints.every((e) => e.removed)).toBe(true);
  });

  it('counts a rule\'s mirror copies in flight across reloads: a reload does not open another 64 places', () => {
    const { mesh, install, requests } = meshWithPools();
    const routes = { catalog: [{ match: { pathPrefix: '/' }, split: { v1: 100 }, mirror: { subset: 'v2', percent: 100 } }] };
    const offer = (): void => {
      const mirror = mesh.service('catalog')!.routes[0]!.mirror!;
      for (let i = 0; i < 70; i++) mirror('GET', `/x${i}`, [], undefined);
    };
    install('1', [1001, 1002], routes);
    offer();
    expect(requests.length).toBe(64);
    install('2', [1001, 1002], routes);
    install('3', [1001, 1002, 1003], routes); // an endpoint change rebuilds it too
    offer();
    expect(requests.length).toBe(64);
    expect(requests.every((r) => r === '127.0.0.1:1002')).toBe(true);
  });
});

describe('Mesh with a watch deferred until first use (control-plane mode with Consul)', () => {
  function deferringMesh() {
    const pushed = new StaticEndpointSource();
    const consul = new ManualEndpointSource();
    const pools = new EndpointPools(() => ({ close: async () => {} }) as unknown as Dispatcher);
    const mesh = new Mesh({ self: 'web', endpointSource: pushed, endpointSourceOnUse: new UntilAnsweredSource(consul, pushed), pools, metrics: new SidecarMetrics(), logger: pino({ level: 'silent' }) });
    const install = (version: string, services: Record<string, number[]>): void => {
      const snapshot = parseSnapshot({ version, services: Object.fromEntries(Object.entries(services).map(([name, ports]) => [name, { endpoints: ports.map((port) => ({ address: '127.0.0.1', port, labels: {} })) }])) });
      pushed.update(snapshot);
      mesh.install(snapshot);
    };
    /** The ports /clusters shows, which is no request's lookup. */
    const ports = (service: string): number[] => (mesh.clusters() as Record<string, { endpoints: { port: number }[] }>)[service]!.endpoints.map((e) => e.port);
    return { mesh, consul, install, ports };
  }
  const at = (port: number) => ({ address: '127.0.0.1', port, labels: {} });

  it('routes by the pushed endpoints and watches Consul for a destination only from its first lookup on', () => {
    const { mesh, consul, install, ports } = deferringMesh();
    install('1', { catalog: [1001], orders: [2001] });
    expect([consul.watching('catalog'), consul.watching('orders')]).toEqual([0, 0]);
    install('2', { catalog: [1001, 1002], orders: [2001, 2002] });
    expect([ports('catalog'), ports('orders')]).toEqual([[1001, 1002], [2001, 2002]]);

    const first = mesh.service('catalog')!;
    expect([consul.watching('catalog'), consul.watching('orders')]).toEqual([1, 0]);
    // Until Consul answers, the pushed set stands in.
    expect(first.endpoints.map((e) => e.port)).toEqual([1001, 1002]);
    expect(first.awaitingUse).toBe(false);
    mesh.service('catalog');
    expect(consul.watching('catalog')).toBe(1);

    // Consul's answer replaces the pushed set for the destination in use; the other follows pushes.
    consul.send('catalog', [at(1003)]);
    install('3', { catalog: [1001], orders: [2002] });
    expect([ports('catalog'), ports('orders')]).toEqual([[1003], [2002]]);
    expect(mesh.service('orders')!.endpoints.map((e) => e.port)).toEqual([2002]);
    expect(consul.watching('orders')).toBe(1);

    // Gone from the snapshot, its watch ends; back, it waits for a request again.
    install('4', { orders: [2002] });
    expect(consul.watching('catalog')).toBe(0);
    install('5', { catalog: [1001], orders: [2002] });
    expect(consul.watching('catalog')).toBe(0);
    mesh.close();
    expect(consul.watching('orders')).toBe(0);
  });

  it('watches every destination as the snapshot names it where nothing is deferred (static mode)', () => {
    const consul = new ManualEndpointSource();
    const mesh = new Mesh({ self: 'web', endpointSource: consul, pools: new EndpointPools(() => ({ close: async () => {} }) as unknown as Dispatcher), metrics: new SidecarMetrics(), logger: pino({ level: 'silent' }) });
    mesh.install(parseSnapshot({ version: '1', services: { catalog: {}, orders: {} } }));
    expect([consul.watching('catalog'), consul.watching('orders')]).toEqual([1, 1]);
    mesh.service('catalog');
    expect(consul.watching('catalog')).toBe(1);
    mesh.close();
  });
});

describe("Mesh's inbound rate limit", () => {
  it("is its own service's rateLimit, kept by a reload that leaves the limit as it is and started afresh by one that changes it", () => {
    const mesh = new Mesh({ self: 'web', endpointSource: new StaticEndpointSource(), pools: new EndpointPools(() => ({}) as Dispatcher), metrics: new SidecarMetrics(), logger: pino({ level: 'silent' }) });
    const install = (version: string, services: SnapshotInput['services']): void => mesh.install(parseSnapshot({ version, services }));
    install('1', { catalog: { rateLimit: { requestsPerSecond: 1 } } });
    // Another service's limit is for its own instances' sidecars.
    expect(mesh.rateLimit).toBeNull();

    install('2', { web: { rateLimit: { requestsPerSecond: 1 } } });
    const limit = mesh.rateLimit!;
    expect(limit.admit('a', 'GET', '/', {}, 'web')).toBeNull();
    expect(limit.admit('a', 'GET', '/', {}, 'web')).not.toBeNull();
    install('3', { web: { rateLimit: { requestsPerSecond: 1, burst: 1 } }, catalog: {} });
    expect(mesh.rateLimit).toBe(limit);

    install('4', { web: { rateLimit: { requestsPerSecond: 2 } } });
    expect(mesh.rateLimit).not.toBe(limit);
    expect(mesh.rateLimit!.policy).toEqual({ requestsPerSecond: 2, burst: 2 });
    expect(mesh.rateLimit!.admit('a', 'GET', '/', {}, 'web')).toBeNull();

    install('5', { web: {} });
    expect(mesh.rateLimit).toBeNull();
  });
});
