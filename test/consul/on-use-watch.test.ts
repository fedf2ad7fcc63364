/**
 * A sidecar in control-plane mode with `--consul` watches a destination in Consul only once its
 * app has sent it a request, over HTTP/1.1, a WebSocket upgrade or HTTP/2: the snapshot names
 * every service of the catalog, and a parked query for each would hold a connection to the agent
 * (whose per-address limit every sidecar beside it shares) for destinations never called. Until
 * then the pushed endpoints serve. The sidecar under test talks to the real agent through a
 * recording proxy, which counts its queries.
 */
import { connect as h2connect } from 'node:http2';
import { beforeAll, describe, expect, it } from 'vitest';
import { startControlPlane } from '../control-plane/harness.js';
import { get, startMeshSidecar, type MeshSidecar } from '../identity/mesh.js';
import { rawExchange } from '../sidecar/http.js';
import { freePorts, Processes, waitUntil, type TestUpstream } from '../support/index.js';
import { startConsul, type ConsulAgent } from '../support/consul.js';
import { consulTeardown, healthQueried, recordingAgentProxy, switchableApp, type SwitchableApp } from './fixture.js';

/** Endpoint ports per destination, as the sidecar's /clusters shows them (no request's lookup). */
async function endpointPorts(sidecar: MeshSidecar): Promise<Record<string, number[]>> {
  const clusters = (await (await fetch(`${sidecar.adminUrl}/clusters`)).json()) as Record<string, { endpoints: { port: number }[] }>;
  return Object.fromEntries(Object.entries(clusters).map(([name, c]) => [name, c.endpoints.map((e) => e.port).sort()]));
}

/** The destinations the sidecar's log says it applied an answer of Consul's for. */
function fromConsul(sidecar: MeshSidecar): string[] {
  const lines = sidecar.child.output().split('\n').filter((l) => l.startsWith('{'));
  return lines.map((l) => JSON.parse(l) as { msg?: string; destination?: string }).filter((l) => l.msg === 'endpoints from Consul').map((l) => l.destination!);
}

/** The `:status` of one HTTP/2 request to `authority` through the sidecar's outbound port (h2c, prior knowledge). */
async function h2Status(sidecar: MeshSidecar, authority: string): Promise<number> {
  const session = h2connect(sidecar.outboundUrl);
  try {
    return await new Promise<number>((resolve, reject) => {
      // Without a listener a reset of the connection (the sidecar ending it after the answer) is an uncaught exception.
      session.on('error', reject);
      const stream = session.request({ ':path': '/item', ':authority': authority });
      stream.on('response', (h) => resolve(h[':status']!));
      stream.on('error', reject);
      stream.resume();
      stream.end();
    });
  } finally {
    session.close();
  }
}

describe('control-plane mode with --consul: Consul watched per destination from its first request', { timeout: 120_000 }, () => {
  let consul: ConsulAgent;
  const procs = new Processes();
  const apps: SwitchableApp[] = [];

  beforeAll(async () => {
    consul = await startConsul();
  }, 60_000);
  consulTeardown(procs, apps, () => consul);

  it('holds queries only for destinations its app called; a called one follows Consul, an uncalled one the pushed endpoints', async () => {
    const cp = await startControlPlane(procs, { args: ['--consul', consul.url] });
    const catalogApp = await switchableApp('catalog');
    const webApp = await switchableApp('web');
    apps.push(catalogApp, webApp);
    let agent: TestUpstream | undefined;
    try {
      agent = await recordingAgentProxy(consul);
      const queried = (): string[] => healthQueried(agent!.requests);
      // Destinations nothing listens for: a call to one fails, but is a call all the same.
      const [closed1, closed2] = (await freePorts(2)) as [number, number];
      for (const name of ['orders', 'payments', 'ledger']) await consul.put('/agent/service/register', { ID: `${name}-1`, Name: name, Address: '127.0.0.1', Port: closed1 });
      const catalog = await startMeshSidecar(procs, cp, { service: 'catalog', appPort: catalogApp.port, extraArgs: ['--consul', consul.url] });
      const web = await startMeshSidecar(procs, cp, { service: 'web', appPort: webApp.port, extraArgs: ['--consul', agent.url] });
      const pushed = { catalog: [catalog.inboundPort], ledger: [closed1], orders: [closed1], payments: [closed1] };
      await waitUntil(async () => {
        const ports = await endpointPorts(web);
        return Object.entries(pushed).every(([name, want]) => JSON.stringify(ports[name]) === JSON.stringify(want));
      }, { timeoutMs: 15_000, what: "web's snapshot to list every destination with its pushed endpoint" });

      // The first request to catalog is what starts its watch; no other destination has one.
      expect((await get(web, 'catalog', '/item')).status).toBe(200);
      await waitUntil(() => fromConsul(web).includes('catalog'), { timeoutMs: 10_000, what: "catalog's endpoints from Consul in web's log" });
      expect(queried()).toEqual(['catalog']);

      // A called destination follows Consul: its instance failing its check leaves web's set, and comes back.
      const asked = agent.requests.length;
      catalogApp.healthy = false;
      await waitUntil(async () => (await endpointPorts(web)).catalog?.length === 0, { timeoutMs: 15_000, what: 'the unhealthy catalog instance to leave web\'s endpoints' });
      expect(agent.requests.length).toBeGreaterThan(asked);
      catalogApp.healthy = true;
      await waitUntil(async () => (await get(web, 'catalog', '/item')).status === 200, { timeoutMs: 15_000, what: 'catalog back for web' });

      // An uncalled destination follows the pushed snapshots, with no query of web's own.
      await consul.put('/agent/service/register', { ID: 'ledger-2', Name: 'ledger', Address: '127.0.0.1', Port: closed2 });
      await waitUntil(async () => JSON.stringify((await endpointPorts(web)).ledger) === JSON.stringify([closed1, closed2].sort()), { timeoutMs: 15_000, what: "ledger's second instance pushed to web" });
      expect(queried()).toEqual(['catalog']);

      // A WebSocket upgrade and an HTTP/2 request are first calls too.
      const upgrade = await rawExchange(Number(new URL(web.outboundUrl).port), 'GET /ws HTTP/1.1\r\nHost: orders\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: MDEyMzQ1Njc4OWFiY2RlZg==\r\nSec-WebSocket-Version: 13\r\n\r\n', /\r\n\r\n/);
      expect(upgrade).toMatch(/^HTTP\/1\.1 503 /);
      await waitUntil(() => queried().includes('orders'), { timeoutMs: 10_000, what: "the upgrade to start orders' watch" });
      expect(await h2Status(web, 'payments')).toBe(503);
      await waitUntil(() => queried().includes('payments'), { timeoutMs: 10_000, what: "the HTTP/2 request to start payments' watch" });
      expect(queried()).toEqual(['catalog', 'orders', 'payments']);
    } finally {
      await procs.killAll();
      await agent?.close();
    }
  });
});
