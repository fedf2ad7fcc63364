/**
 * Failover lists as the sidecar compiles them once per snapshot: defaults filled in, targets it
 * cannot serve left out, each subset's list (its own, else `*`'s) on its runtime with a picker
 * that never panics to an ejected endpoint, and other services' target subsets built from the start.
 */
import { pino } from 'pino';
import type { Dispatcher } from 'undici';
import { describe, expect, it } from 'vitest';
import { parseSnapshot } from '../../common/config/parse.js';
import type { SnapshotInput } from '../../common/config/schema.js';
import { StaticEndpointSource } from '../discovery/static.js';
import { SidecarMetrics } from '../telemetry/metrics.js';
import { compileFailover, failoverOf } from './failover.js';
import { Mesh } from './mesh.js';
import { pickWithoutFailover } from './service-runtime.js';
import { EndpointPools } from './upstream-endpoint.js';

const endpoint = (port: number, version: string) => ({ address: '127.0.0.1', port, labels: { version } });

function meshOf(input: SnapshotInput): Mesh {
  const pools = new EndpointPools(() => ({ close: async () => {} }) as unknown as Dispatcher);
  const source = new StaticEndpointSource();
  const mesh = new Mesh({ self: 'web', endpointSource: source, pools, metrics: new SidecarMetrics(), logger: pino({ level: 'silent' }) });
  const snapshot = parseSnapshot(input);
  source.update(snapshot);
  mesh.install(snapshot);
  return mesh;
}

describe('compileFailover', () => {
  it('fills in this service and the catch-all, and leaves out targets of services not listed, of another protocol, or the list itself', () => {
    const snapshot = parseSnapshot({
      services: {
        catalog: { failover: { v2: [{ subset: 'v1' }, { service: 'orders' }, { service: 'grpc-dr' }, { service: 'catalog', subset: 'v2' }, { service: 'catalog-dr', subset: 'v1' }], '*': [{ service: 'catalog', subset: 'v1' }] } },
        'catalog-dr': {},
        'grpc-dr': { protocol: 'grpc' },
      },
    });
    const lists = compileFailover('catalog', snapshot.services.catalog!, snapshot, () => undefined)!;
    expect(failoverOf(lists, 'catalog', 'v2')!.map((t) => t.label)).toEqual(['catalog/v1', 'catalog-dr/v1']);
    // A subset without a list of its own takes `*`'s; for v1, `*`'s only target is v1 itself, so it has none.
    expect(failoverOf(lists, 'catalog', 'canary')!.map((t) => t.label)).toEqual(['catalog/v1']);
    expect(failoverOf(lists, 'catalog', 'v1')).toBeNull();
    expect(compileFailover('catalog-dr', snapshot.services['catalog-dr']!, snapshot, () => undefined)).toBeNull();
  });
});

describe('a runtime with failover', () => {
  const input: SnapshotInput = {
    services: {
      catalog: { failover: { v2: [{ subset: 'v1' }, { service: 'catalog-dr', subset: 'v1' }] }, endpoints: [endpoint(8001, 'v1'), endpoint(8002, 'v2')] },
      'catalog-dr': { endpoints: [endpoint(9001, 'v1')] },
    },
    routes: { catalog: [{ split: { v2: 100 } }] },
  };

  it("puts each subset's list on it, resolving targets to the runtimes in force, and builds other services' target subsets", () => {
    const mesh = meshOf(input);
    const v2 = mesh.service('catalog')!.subsets.get('v2')!;
    const [own, other] = v2.failover!.targets;
    expect(own!.runtime()).toBe(mesh.service('catalog'));
    expect(other!.runtime()!.subsets.get('v1')!.endpoints.map((e) => e.key)).toEqual(['127.0.0.1:9001']);
    expect(mesh.service('catalog')!.subsets.get('v1')!.failover).toBeNull();
  });

  it('picks nothing from a subset whose endpoints are all ejected, where its panic pick and pickWithoutFailover still do', () => {
    const mesh = meshOf(input);
    const runtime = mesh.service('catalog')!;
    const v2 = runtime.subsets.get('v2')!;
    expect(v2.picker.pick()!.key).toBe('127.0.0.1:8002');
    for (let i = 0; i < 5; i++) runtime.outlier.record('127.0.0.1:8002', true);
    // 50% of two endpoints: v2's only one can be ejected.
    expect(runtime.outlier.isEjected('127.0.0.1:8002')).toBe(true);
    expect(v2.picker.pick()).toBeUndefined();
    expect(v2.failover!.panic.pick()!.key).toBe('127.0.0.1:8002');
    expect(pickWithoutFailover(v2, undefined)!.key).toBe('127.0.0.1:8002');
    // A subset without a list keeps panic routing.
    expect(mesh.service('catalog-dr')!.subsets.get('v1')!.failover).toBeNull();
  });
});
