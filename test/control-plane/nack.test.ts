/**
 * A snapshot a sidecar refuses: it answers NACK with the exact reason, keeps serving on its
 * last good snapshot, and ACKs the next good one. The snapshots come from a scripted
 * control plane (scripted-control-plane.ts), since the real one never composes an invalid one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { echoHandler, Processes, startUpstream, waitUntil, type TestUpstream } from '../support/index.js';
import { get, startMeshSidecar, type MeshSidecar } from '../identity/mesh.js';
import type { ControlPlaneProcess } from './harness.js';
import { ScriptedControlPlane } from './scripted-control-plane.js';

const procs = new Processes();
const apps: TestUpstream[] = [];
let cp: ScriptedControlPlane;
let frontend: MeshSidecar;
let version = 0;

function meshSnapshot(routes: Record<string, unknown> = {}) {
  const services: Record<string, { endpoints: { address: string; port: number; labels: Record<string, string> }[] }> = {};
  for (const h of cp.hellos) {
    services[h.service] ??= { endpoints: [] };
    services[h.service]!.endpoints.push({ address: h.address, port: h.inboundPort, labels: { version: h.version } });
  }
  return { services, routes };
}

beforeAll(async () => {
  cp = await ScriptedControlPlane.start((self) => self.push(String(++version), meshSnapshot()));
  const target = { grpcAddress: cp.grpcAddress, caFile: cp.caFile } as ControlPlaneProcess;
  const catalogApp = await startUpstream(echoHandler('catalog'));
  const frontendApp = await startUpstream(echoHandler('frontend'));
  apps.push(catalogApp, frontendApp);
  // The scripted control plane keeps no registry: its snapshots name the endpoints themselves.
  await startMeshSidecar(procs, target, { service: 'catalog', appPort: catalogApp.port, token: 'svc:catalog', listed: false });
  frontend = await startMeshSidecar(procs, target, { service: 'frontend', appPort: frontendApp.port, token: 'svc:frontend', listed: false });
  await waitUntil(async () => (await get(frontend, 'catalog')).status === 200, { what: 'frontend to reach catalog' });
}, 60_000);

afterAll(async () => {
  await procs.killAll();
  await cp.close();
  await Promise.all(apps.map((a) => a.close()));
});

describe('NACK', () => {
  it('a refused snapshot is NACKed with its reason and traffic keeps flowing on the old one', async () => {
    const good = String(version);
    const bad = String(++version);
    cp.push(bad, meshSnapshot({ catalog: [{ split: { v1: 50 } }] }));
    await waitUntil(() => cp.nacks.filter((n) => n.version === bad).length === 2, { what: 'both sidecars to NACK' });
    for (const nack of cp.nacks) expect(nack.reason).toMatch(/routes\.catalog\[0\]\.split: weights must sum to 100/);
    expect(cp.acks.some((a) => a.version === bad)).toBe(false);

    for (let i = 0; i < 20; i++) expect((await get(frontend, 'catalog')).status).toBe(200);
    const config = (await (await fetch(`${frontend.adminUrl}/config`)).json()) as { version: string };
    expect(config.version).toBe(good);
    expect((await fetch(`${frontend.adminUrl}/ready`)).status).toBe(200);

    const next = String(++version);
    cp.push(next, meshSnapshot({ catalog: [{ split: { v1: 100 } }] }));
    await waitUntil(() => cp.acks.filter((a) => a.version === next).length === 2, { what: 'both sidecars to ACK the next good snapshot' });
    expect((await get(frontend, 'catalog')).status).toBe(200);
  });
});
