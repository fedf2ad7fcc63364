import { describe, expect, it } from 'vitest';
import { parseSnapshot } from '../../common/config/parse.js';
import type { Instance } from '../registry/discovery.js';
import { composeSnapshot } from './compose.js';

const instance = (service: string, id: string, version: string, protocol: 'http' | 'grpc' = 'http'): Instance => ({
  service,
  id,
  address: '10.0.0.1',
  port: 15443,
  protocol,
  labels: { version },
  health: 'healthy',
});

describe('composeSnapshot', () => {
  it('merges stored policy and routes with discovered endpoints into a valid snapshot', () => {
    const body = composeSnapshot(
      {
        policies: { catalog: { timeout: '2s', subsets: { stable: { version: 'v1' } } } },
        routes: { catalog: [{ match: { pathPrefix: '/' }, split: { stable: 90, v2: 10 } }], search: [{ split: { v1: 100 } }] },
        intentions: { defaultAction: 'allow' },
      },
      [instance('catalog', 'a', 'v1'), instance('catalog', 'b', 'v2'), instance('payments', 'c', 'v1', 'grpc')],
    );
    const snap = parseSnapshot({ version: '1', ...body });
    expect(Object.keys(snap.services)).toEqual(['catalog', 'payments', 'search']);
    expect(snap.services.catalog!.timeout).toBe(2_000);
    expect(snap.services.catalog!.endpoints!.map((e) => e.labels.version)).toEqual(['v1', 'v2']);
    // A service without a policy takes its protocol from its instances.
    expect(snap.services.payments!.protocol).toBe('grpc');
    expect(snap.services.search!.endpoints).toEqual([]);
    expect(snap.intentions).toEqual({ defaultAction: 'allow', rules: [] });
  });

  it('leaves intentions out when none are stored (every caller allowed)', () => {
    expect(composeSnapshot({ policies: {}, routes: {} }, [])).toEqual({ services: {}, routes: {} });
  });

  it('pushes instances in warning as endpoints, critical ones never, and with onlyPassing only passing ones', () => {
    const at = (port: number, health: Instance['health']): Instance => ({ ...instance('catalog', `c-${port}`, 'v1'), port, health });
    const instances = [at(1, 'healthy'), at(2, 'warning'), at(3, 'critical'), at(4, 'disconnected')];
    const ports = (policies: Record<string, { onlyPassing: boolean }>) =>
      composeSnapshot({ policies, routes: {} }, instances).services!.catalog!.endpoints!.map((e) => e.port);
    expect(ports({})).toEqual([1, 2, 4]);
    expect(ports({ catalog: { onlyPassing: false } })).toEqual([1, 2, 4]);
    expect(ports({ catalog: { onlyPassing: true } })).toEqual([1, 4]);
  });
});
