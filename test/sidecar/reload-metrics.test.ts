/**
 * A reload that removes a subset and a service takes their gauges (`skein_circuit_state`,
 * `skein_endpoints`) off `/metrics`, where they kept reporting a circuit and endpoints that no
 * longer existed; what remains keeps its series.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { SnapshotInput } from '../../common/config/schema.js';
import { echoHandler, Processes, startUpstream, waitUntil, writeConfigFile, writeTempConfig, type TestUpstream } from '../support/index.js';
import { endpointOf, scrape } from './resilience-fixture.js';

const procs = new Processes();
const upstreams: TestUpstream[] = [];

afterAll(async () => {
  await procs.killAll();
  await Promise.all(upstreams.map((u) => u.close()));
});

/** The gauge series of `/metrics` naming `destination`, as `name{labels}` keys. */
async function gauges(adminUrl: string, destination: string): Promise<string[]> {
  const s = await scrape({ adminUrl });
  return [...s.keys()].filter((k) => /^skein_(circuit_state|endpoints)\{/.test(k) && k.includes(`destination="${destination}"`)).sort();
}

describe('a reload removing a subset and a service', () => {
  it('drops their circuit and endpoint gauges and keeps the rest', async () => {
    const [v1, v2, inv, app] = await Promise.all([startUpstream(echoHandler('v1')), startUpstream(echoHandler('v2')), startUpstream(echoHandler('inventory')), startUpstream(echoHandler('web'))]);
    upstreams.push(v1, v2, inv, app);
    const first: SnapshotInput = {
      version: '1',
      services: { catalog: { endpoints: [endpointOf(v1, 'v1'), endpointOf(v2, 'v2')] }, inventory: { endpoints: [endpointOf(inv)] } },
      routes: { catalog: [{ name: 'all', match: { pathPrefix: '/' }, split: { v1: 50, v2: 50 } }] },
    };
    const file = writeTempConfig(first);
    const sc = await procs.sidecar({ service: 'web', appPort: app.port, config: file });
    expect(await gauges(sc.adminUrl, 'catalog')).toEqual([
      'skein_circuit_state{destination="catalog",subset="v1"}',
      'skein_circuit_state{destination="catalog",subset="v2"}',
      'skein_endpoints{destination="catalog",state="ejected",subset="v1"}',
      'skein_endpoints{destination="catalog",state="ejected",subset="v2"}',
      'skein_endpoints{destination="catalog",state="healthy",subset="v1"}',
      'skein_endpoints{destination="catalog",state="healthy",subset="v2"}',
    ]);
    expect((await gauges(sc.adminUrl, 'inventory')).length).toBeGreaterThan(0);

    writeConfigFile(file, { version: '2', services: { catalog: { endpoints: [endpointOf(v1, 'v1'), endpointOf(v2, 'v2')] } }, routes: { catalog: [{ name: 'all', match: { pathPrefix: '/' }, split: { v1: 100 } }] } });
    await waitUntil(async () => ((await (await fetch(`${sc.adminUrl}/config`)).json()) as { version: string }).version === '2', { what: 'version 2 applied' });
    expect(await gauges(sc.adminUrl, 'catalog')).toEqual([
      'skein_circuit_state{destination="catalog",subset="v1"}',
      'skein_endpoints{destination="catalog",state="ejected",subset="v1"}',
      'skein_endpoints{destination="catalog",state="healthy",subset="v1"}',
    ]);
    expect(await gauges(sc.adminUrl, 'inventory')).toEqual([]);
  });
});
