/**
 * Certificate renewal and root rotation under steady load, with real processes: leaves live
 * a few seconds and are renewed while requests flow, then `skein ca rotate` replaces the
 * root; no request may fail at any point.
 */
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ControlPlaneProcess } from '../control-plane/harness.js';
import { Processes, waitUntil, type TestUpstream } from '../support/index.js';
import { startGatewayAndOrders } from './gateway-orders.js';
import { get, metricValue, servedCertificate, skeinCli, steadyLoad, type MeshSidecar } from './mesh.js';

const procs = new Processes();
const apps: TestUpstream[] = [];
let cp: ControlPlaneProcess;
let gateway: MeshSidecar;
let orders: MeshSidecar;

interface CaView {
  roots: { fingerprint: string; signing: boolean }[];
  rotation: { phase: string; rotating: boolean; finishedAt: string | null };
}

beforeAll(async () => {
  ({ cp, gateway, orders } = await startGatewayAndOrders(procs, apps, ['--cert-ttl', '6s']));
}, 90_000);

afterAll(async () => {
  await procs.killAll();
  await Promise.all(apps.map((a) => a.close()));
});

const expiry = (s: MeshSidecar) => metricValue(s, /^skein_cert_expiry_timestamp_seconds /);

describe('certificate lifetimes of a few seconds under steady load', () => {
  it('renews both sides twice without failing a request', async () => {
    const load = steadyLoad(gateway, 'orders');
    const [g0, o0] = [await expiry(gateway), await expiry(orders)];
    // Two renewals each: at ~2/3 of 6 s, so the expiry moves forward at least twice.
    await waitUntil(async () => (await expiry(gateway))! >= g0! + 6 && (await expiry(orders))! >= o0! + 6, { what: 'two renewals on each side', timeoutMs: 20_000, intervalMs: 200 });
    const { ok, failures } = await load.stop();
    expect(failures, failures.join("\n")).toEqual([]);
    expect(ok).toBeGreaterThan(100);
  }, 40_000);

  it('rotates the root with `skein ca rotate` and loses no request', async () => {
    const before = (await cp.api.get<CaView>('/api/v1/ca')).body;
    expect(before.roots).toHaveLength(1);
    const oldBundle = await readFile(cp.caFile, 'utf8');
    const load = steadyLoad(gateway, 'orders');
    await waitUntil(() => load.ok > 20, { what: 'load to flow' });

    const rotate = await skeinCli(procs, cp, ['ca', 'rotate', '--wait', '--timeout', '60s', '--output', 'json']);
    expect(rotate.code, rotate.output).toBe(0);
    // Keep the load on past one more renewal from the new root.
    const settled = load.ok;
    await waitUntil(() => load.ok > settled + 50, { what: 'load to go on after the rotation' });
    const { ok, failures } = await load.stop();

    const after = (await cp.api.get<CaView>('/api/v1/ca')).body;
    expect(after.rotation.rotating).toBe(false);
    expect(after.rotation.finishedAt).not.toBeNull();
    expect(after.roots).toHaveLength(1);
    expect(after.roots[0]!.fingerprint).not.toBe(before.roots[0]!.fingerprint);
    expect(failures, failures.join("\n")).toEqual([]);
    expect(ok).toBeGreaterThan(100);
    expect((await get(gateway, 'orders')).status).toBe(200);
    // The old root left the bundle only once every sidecar ran a leaf from the new one: both
    // serve a leaf that the new bundle alone verifies, and the old bundle no longer does.
    const newBundle = await readFile(cp.caFile, 'utf8');
    for (const sidecar of [gateway, orders]) {
      await expect(servedCertificate(sidecar, newBundle)).resolves.toMatchObject({ subjectaltname: `URI:spiffe://skein.local/service/${sidecar.service}` });
      await expect(servedCertificate(sidecar, oldBundle)).rejects.toThrow(/unable to get local issuer certificate|certificate signature failure|self.signed/i);
    }
  }, 90_000);
});
