/**
 * Root rotation across a control-plane restart, with real processes: the rotation is held in
 * "staged" by a sidecar that never renews, and the control plane is SIGKILLed and started
 * again without it. Right after the start nobody is connected yet, which is no proof that
 * everybody caught up: the restarted control plane must wait for the sidecars to come back,
 * take them through the remaining steps, and leave no sidecar on the old root. Then a sidecar
 * given a copy of ca.crt made before the rotation (as Compose's and Kubernetes' deploy files
 * make) must still start.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createToken, startControlPlane, testSource, type ControlPlaneProcess } from '../control-plane/harness.js';
import { echoHandler, Processes, startUpstream, tempDir, waitUntil, type TestUpstream } from '../support/index.js';
import { startGatewayAndOrders } from './gateway-orders.js';
import { get, servedCertificate, startMeshSidecar, type MeshSidecar } from './mesh.js';

const procs = new Processes();
const apps: TestUpstream[] = [];
let cp: ControlPlaneProcess;
let gateway: MeshSidecar;
let orders: MeshSidecar;
const caCopy = join(tempDir('skein-ca-copy-'), 'ca.crt');

interface CaView {
  rotation: { phase: string; rotating: boolean; waitingFor: string[]; settlingUntil: string | null; bundleFingerprint: string; signingRootFingerprint: string };
}
const caView = async () => (await cp.api.get<CaView>('/api/v1/ca')).body.rotation;

beforeAll(async () => {
  ({ cp, gateway, orders } = await startGatewayAndOrders(procs, apps, []));
  await copyFile(cp.caFile, caCopy);
}, 90_000);

afterAll(async () => {
  await procs.killAll();
  await Promise.all(apps.map((a) => a.close()));
});

describe('a control-plane restart in the middle of a root rotation', () => {
  it('takes no step before the sidecars are back, and ends with every sidecar on the new root', async () => {
    // A sidecar that reports a stale bundle and never renews keeps the rotation at "staged".
    const slow = testSource(cp, { service: 'slow', instanceId: 'slow-1', token: await createToken(cp, 'slow'), inboundPort: 31_901 });
    slow.sendCertStatus({ expiryUnix: '0', bundleFingerprint: 'stale', rootFingerprint: 'stale' });
    void slow.start(() => undefined);
    await waitUntil(async () => (await cp.api.get<{ proxies: unknown[] }>('/api/v1/proxies?service=slow')).body.proxies.length === 1, { what: 'the slow sidecar to be connected' });
    expect((await cp.api.post('/api/v1/ca/rotate', {})).status).toBe(202);
    // gateway and orders take the staged bundle; only the slow one holds the rotation.
    await waitUntil(async () => (await caView()).waitingFor.length === 1, { what: 'gateway and orders to run the staged bundle', timeoutMs: 15_000 });
    expect((await caView()).phase).toBe('staged');

    cp.child.kill('SIGKILL');
    await cp.child.exited;
    await slow.close();
    cp = await startControlPlane(procs, { dataDir: cp.dataDir, httpPort: cp.httpPort, grpcPort: cp.grpcPort });
    // The harness's --registry-grace 5s is the time the sidecars get to come back.
    const resumed = await caView();
    expect(resumed.phase).toBe('staged');
    expect(resumed.settlingUntil).not.toBeNull();

    await waitUntil(async () => !(await caView()).rotating, { what: 'the rotation to finish', timeoutMs: 60_000 });
    // The proxies view says which root each sidecar's leaf is from, and which bundle it runs.
    const done = await caView();
    type Proxy = { service: string; certRootFingerprint: string | null; trustBundleFingerprint: string | null };
    await waitUntil(async () => {
      const proxies = (await cp.api.get<{ proxies: Proxy[] }>('/api/v1/proxies')).body.proxies;
      return proxies.length === 2 && proxies.every((p) => p.certRootFingerprint === done.signingRootFingerprint && p.trustBundleFingerprint === done.bundleFingerprint);
    }, { what: 'gateway and orders shown on the new root and bundle' });
    const newBundle = await readFile(cp.caFile, 'utf8');
    for (const sidecar of [gateway, orders]) {
      await expect(servedCertificate(sidecar, newBundle)).resolves.toMatchObject({ subjectaltname: `URI:spiffe://skein.local/service/${sidecar.service}` });
    }
    // A sidecar started now runs the new root alone: it must reach, and be reached by, the others.
    const usersApp = await startUpstream(echoHandler('users'));
    apps.push(usersApp);
    const users = await startMeshSidecar(procs, cp, { service: 'users', appPort: usersApp.port });
    await waitUntil(async () => (await get(users, 'orders')).status === 200, { what: 'users to reach orders', timeoutMs: 15_000 });
    await waitUntil(async () => (await get(gateway, 'users')).status === 200, { what: 'gateway to reach users', timeoutMs: 15_000 });
    expect((await get(gateway, 'orders')).status).toBe(200);
  }, 120_000);

  it('still lets a sidecar start whose --ca-file is a copy of ca.crt made before the rotation', async () => {
    expect((await caView()).phase).toBe('stable');
    const paymentsApp = await startUpstream(echoHandler('payments'));
    apps.push(paymentsApp);
    const payments = await startMeshSidecar(procs, cp, { service: 'payments', appPort: paymentsApp.port, caFile: caCopy });
    await waitUntil(async () => (await get(payments, 'orders')).status === 200, { what: 'payments to reach orders', timeoutMs: 15_000 });
  }, 60_000);
});
