/**
 * A reload that removes a subset and a service takes their gauges (`skein_circuit_state`,
 * `skein_endpoints`) off `/metrics`, where they kept reporting a circuit and endpoints that no
 * longer existed; what remains keeps its series, a mirror's subset included. A request that
 * chose the removed subset before the reload still gets its retry there, its breaker kept.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { SnapshotInput } from '../../common/config/schema.js';
import { echoHandler, Processes, startUpstream, waitUntil, writeConfigFile, writeTempConfig, type Handler, type TestUpstream } from '../support/index.js';
import { endpointOf, scrape, send } from './resilience-fixture.js';

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

async function versionApplied(adminUrl: string, version: string): Promise<void> {
  await waitUntil(async () => ((await (await fetch(`${adminUrl}/config`)).json()) as { version: string }).version === version, { what: `version ${version} applied` });
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

  it('keeps a mirror subset\'s series from the start and across a reload that changes nothing', async () => {
    const [v1, v2, app] = await Promise.all([startUpstream(echoHandler('v1')), startUpstream(echoHandler('v2')), startUpstream(echoHandler('web'))]);
    upstreams.push(v1, v2, app);
    const snapshot = (version: string): SnapshotInput => ({
      version,
      services: { shop: { endpoints: [endpointOf(v1, 'v1'), endpointOf(v2, 'v2')] } },
      routes: { shop: [{ name: 'all', match: { pathPrefix: '/' }, split: { v1: 100 }, mirror: { subset: 'v2', percent: 100 } }] },
    });
    const file = writeTempConfig(snapshot('1'));
    const sc = await procs.sidecar({ service: 'web', appPort: app.port, config: file });
    const v2Series = async (): Promise<string[]> => (await gauges(sc.adminUrl, 'shop')).filter((k) => k.includes('subset="v2"'));
    expect(await v2Series()).toHaveLength(3);
    writeConfigFile(file, snapshot('2'));
    await versionApplied(sc.adminUrl, '2');
    expect(await v2Series()).toHaveLength(3);
  });

  it('lets a request that chose the removed subset before the reload retry there after it, its breaker kept', async () => {
    let release: (() => void) | undefined;
    let first = true;
    const echo = echoHandler('v2');
    // v2 holds its first request until released, then fails it (a retry); it answers the rest.
    const holdsFirst: Handler = (req, res) => {
      if (req.url === '/health' || !first) return echo(req, res);
      first = false;
      release = () => res.writeHead(503).end('busy\n');
    };
    const [v1, v2, app] = await Promise.all([startUpstream(echoHandler('v1')), startUpstream(holdsFirst), startUpstream(echoHandler('web'))]);
    upstreams.push(v1, v2, app);
    const snapshot = (version: string, subset: string): SnapshotInput => ({
      version,
      services: { shop: { timeout: '10s', retries: { attempts: 1, on: ['5xx'] }, endpoints: [endpointOf(v1, 'v1'), endpointOf(v2, 'v2')] } },
      routes: { shop: [{ name: 'all', match: { pathPrefix: '/' }, split: { [subset]: 100 } }] },
    });
    const file = writeTempConfig(snapshot('1', 'v2'));
    const sc = await procs.sidecar({ service: 'web', appPort: app.port, config: file });
    const reply = send(`${sc.outboundUrl}/held`, { headers: { host: 'shop' } });
    await waitUntil(() => release !== undefined, { what: 'the first try to be held' });
    writeConfigFile(file, snapshot('2', 'v1'));
    await versionApplied(sc.adminUrl, '2');
    release!();
    const r = await reply;
    expect(r.status, r.body).toBe(200);
    expect(JSON.parse(r.body).name).toBe('v2');
  });
});
