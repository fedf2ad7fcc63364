/**
 * A control plane that stops reading its push streams (busy, or stalled) while traffic goes
 * on: the sidecars must drop telemetry (spans counted in skein_spans_dropped_total) rather
 * than queue it on the stream without bound, and the stream must stay usable.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { echoHandler, Processes, startUpstream, waitUntil, type TestUpstream } from '../support/index.js';
import { get, startMeshSidecar, type MeshSidecar } from '../identity/mesh.js';
import type { ControlPlaneProcess } from '../control-plane/harness.js';
import { ScriptedControlPlane } from '../control-plane/scripted-control-plane.js';
import { metric, scrape } from '../sidecar/resilience-fixture.js';

const procs = new Processes();
const apps: TestUpstream[] = [];
let cp: ScriptedControlPlane;
let frontend: MeshSidecar;
let version = 0;

function meshSnapshot() {
  const services: Record<string, { endpoints: { address: string; port: number; labels: Record<string, string> }[] }> = {};
  for (const h of cp.hellos) {
    services[h.service] ??= { endpoints: [] };
    services[h.service]!.endpoints.push({ address: h.address, port: h.inboundPort, labels: { version: h.version } });
  }
  return { services };
}

beforeAll(async () => {
  cp = await ScriptedControlPlane.start((self) => self.push(String(++version), meshSnapshot()));
  const target = { grpcAddress: cp.grpcAddress, caFile: cp.caFile } as ControlPlaneProcess;
  const catalogApp = await startUpstream(echoHandler('catalog'));
  const frontendApp = await startUpstream(echoHandler('frontend'));
  apps.push(catalogApp, frontendApp);
  await startMeshSidecar(procs, target, { service: 'catalog', appPort: catalogApp.port, token: 'svc:catalog', listed: false });
  frontend = await startMeshSidecar(procs, target, { service: 'frontend', appPort: frontendApp.port, token: 'svc:frontend', listed: false });
  await waitUntil(async () => (await get(frontend, 'catalog')).status === 200, { what: 'frontend to reach catalog' });
}, 60_000);

afterAll(async () => {
  await procs.killAll();
  await cp.close();
  await Promise.all(apps.map((a) => a.close()));
});

describe('telemetry on a push stream the control plane does not read', () => {
  it('is dropped and counted, not queued without bound, and the stream stays up', async () => {
    cp.pauseReading();
    // Long paths make big spans: a few thousand requests are far more than HTTP/2's windows hold.
    const path = `/items/${'x'.repeat(2000)}`;
    let sent = 0;
    let dropped = 0;
    const deadline = Date.now() + 60_000;
    while (dropped === 0) {
      if (Date.now() > deadline) throw new Error(`no span dropped after ${sent} requests while the control plane read nothing`);
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          for (let i = 0; i < 50; i++) {
            const res = await request(`${frontend.outboundUrl}${path}`, { headers: { host: 'catalog' } });
            await res.body.dump();
            expect(res.statusCode).toBe(200);
            sent++;
          }
        }),
      );
      dropped = metric(await scrape(frontend), 'skein_spans_dropped_total');
    }
    expect(dropped).toBeGreaterThan(0);

    // Once the control plane reads again, the stream carries a new snapshot and its ACK.
    cp.pauseReading(false);
    const next = String(++version);
    cp.push(next, meshSnapshot());
    await waitUntil(() => cp.acks.filter((a) => a.version === next).length === 2, { what: 'both sidecars to ACK after the stall', timeoutMs: 30_000 });
  });
});
