/**
 * A reload that changes a service's circuit breaker policy reconfigures its breakers in place:
 * tries admitted before it still count against the new `maxConcurrent` (and in `/clusters`)
 * until they end, and an open circuit stays open. Before 2026-12-06 a changed policy replaced
 * the breakers with ones closed and empty: 10 tries in flight under `maxConcurrent: 10`, then a reload
 * to 5, let 5 more through (15 at the app), and changing only `resetTimeout` closed a circuit
 * open for an outage.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { SnapshotInput } from '../../common/config/schema.js';
import { echoHandler, Processes, startUpstream, waitUntil, writeConfigFile, writeTempConfig, type TestUpstream } from '../support/index.js';
import { endpointOf, send } from './resilience-fixture.js';

const procs = new Processes();
const upstreams: TestUpstream[] = [];

afterAll(async () => {
  await procs.killAll();
  await Promise.all(upstreams.map((u) => u.close()));
});

async function versionApplied(adminUrl: string, version: string): Promise<void> {
  await waitUntil(async () => ((await (await fetch(`${adminUrl}/config`)).json()) as { version: string }).version === version, { what: `version ${version} applied` });
}

interface BreakerView {
  state: string;
  active: number;
}

async function breakerOf(adminUrl: string): Promise<BreakerView> {
  const clusters = (await (await fetch(`${adminUrl}/clusters`)).json()) as Record<string, { subsets: Record<string, { breaker: BreakerView }> }>;
  // No routes: one catch-all rule over every endpoint, its one subset.
  return Object.values(clusters.shop!.subsets)[0]!.breaker;
}

describe('a reload changing the circuit breaker policy', () => {
  it("counts the tries in flight under the old breaker against the new maxConcurrent, and in /clusters", async () => {
    const held: Array<() => void> = [];
    const echo = echoHandler('v1');
    const app = await startUpstream((req, res) => {
      if (req.url === '/health' || req.url === '/quick') return echo(req, res);
      held.push(() => echo(req, res));
    });
    const own = await startUpstream(echoHandler('web'));
    upstreams.push(app, own);
    const snapshot = (version: string, maxConcurrent: number): SnapshotInput => ({
      version,
      services: { shop: { timeout: '20s', retries: { attempts: 0 }, circuitBreaker: { maxConcurrent }, endpoints: [endpointOf(app)] } },
    });
    const file = writeTempConfig(snapshot('1', 10));
    const sc = await procs.sidecar({ service: 'web', appPort: own.port, config: file });
    const slow = Array.from({ length: 10 }, (_, i) => send(`${sc.outboundUrl}/slow/${i}`, { headers: { host: 'shop' } }));
    await waitUntil(() => held.length === 10, { what: 'ten tries at the app' });
    writeConfigFile(file, snapshot('2', 5));
    await versionApplied(sc.adminUrl, '2');
    expect(await breakerOf(sc.adminUrl)).toMatchObject({ state: 'closed', active: 10 });
    const refused = await Promise.all(Array.from({ length: 3 }, () => send(`${sc.outboundUrl}/quick`, { headers: { host: 'shop' } })));
    for (const r of refused) {
      expect(r.status, r.body).toBe(503);
      expect(r.headers['x-skein-reason']).toBe('circuit-open');
    }
    expect(held).toHaveLength(10);
    // Six of the old tries end: four stay, one place under the new limit of 5.
    for (const answer of held.splice(0, 6)) answer();
    await waitUntil(async () => (await breakerOf(sc.adminUrl)).active === 4, { what: 'six tries ended' });
    expect((await send(`${sc.outboundUrl}/quick`, { headers: { host: 'shop' } })).status).toBe(200);
    for (const answer of held.splice(0)) answer();
    for (const r of await Promise.all(slow)) expect(r.status, r.body).toBe(200);
    expect(await breakerOf(sc.adminUrl)).toMatchObject({ active: 0 });
  });

  it('keeps an open circuit open when only its resetTimeout changes', async () => {
    let failing = true;
    const echo = echoHandler('v1');
    const app = await startUpstream((req, res) => (req.url !== '/health' && failing ? res.writeHead(500).end('down\n') : echo(req, res)));
    const own = await startUpstream(echoHandler('web'));
    upstreams.push(app, own);
    const snapshot = (version: string, resetTimeout: string): SnapshotInput => ({
      version,
      services: { shop: { retries: { attempts: 0 }, circuitBreaker: { volumeThreshold: 3, resetTimeout }, endpoints: [endpointOf(app)] } },
    });
    const file = writeTempConfig(snapshot('1', '30s'));
    const sc = await procs.sidecar({ service: 'web', appPort: own.port, config: file });
    for (let i = 0; i < 3; i++) expect((await send(`${sc.outboundUrl}/x`, { headers: { host: 'shop' } })).status).toBe(500);
    expect((await breakerOf(sc.adminUrl)).state).toBe('open');
    writeConfigFile(file, snapshot('2', '20s'));
    await versionApplied(sc.adminUrl, '2');
    failing = false;
    expect((await breakerOf(sc.adminUrl)).state).toBe('open');
    const r = await send(`${sc.outboundUrl}/x`, { headers: { host: 'shop' } });
    expect(r.status).toBe(503);
    expect(r.headers['x-skein-reason']).toBe('circuit-open');
  });
});
