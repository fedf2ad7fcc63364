/**
 * A reload's effect on the runtimes requests already hold: the subset a request chose is
 * linked to the one that replaced it (retries follow the link), and endpoints a reload
 * removed are marked so, their pools closed.
 */
import { pino } from 'pino';
import type { Dispatcher } from 'undici';
import { describe, expect, it } from 'vitest';
import { parseSnapshot } from '../../common/config/parse.js';
import type { SnapshotInput } from '../../common/config/schema.js';
import { StaticEndpointSource } from '../discovery/static.js';
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
