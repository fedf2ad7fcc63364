/**
 * Failover as the sidecar compiles it once per snapshot: each subset's targets on its runtime,
 * resolved to the runtimes in force, with a picker that never panics to an ejected endpoint,
 * and other services' target subsets built from the start.
 */
import { pino } from 'pino';
import type { Dispatcher } from 'undici';
import { describe, expect, it } from 'vitest';
import { parseSnapshot } from '../../common/config/parse.js';
import type { SnapshotInput } from '../../common/config/schema.js';
import { StaticEndpointSource } from '../discovery/static.js';
import { SidecarMetrics } from '../telemetry/metrics.js';
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
