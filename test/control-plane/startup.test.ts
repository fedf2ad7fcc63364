/**
 * Static stability at start-up: a sidecar started while its control plane is down waits
 * for it without crashing, says so in its log and on /ready, and becomes ready (and SYNCED)
 * once the control plane is back.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { echoHandler, Processes, startUpstream, waitUntil, type TestUpstream } from '../support/index.js';
import { startMeshSidecar } from '../identity/mesh.js';
import { createToken, startControlPlane } from './harness.js';

const procs = new Processes();
const apps: TestUpstream[] = [];

afterAll(async () => {
  await procs.killAll();
  await Promise.all(apps.map((a) => a.close()));
});

describe('sidecar start-up without a control plane', () => {
  it('waits and says so in its log and on /ready, then connects when the control plane comes up', async () => {
    const cp = await startControlPlane(procs);
    const token = await createToken(cp, 'catalog');
    cp.child.kill('SIGTERM');
    await cp.child.exited;

    const app = await startUpstream(echoHandler('catalog'));
    apps.push(app);
    const sidecar = await startMeshSidecar(procs, cp, { service: 'catalog', appPort: app.port, token, waitFor: 'none' });
    // It keeps retrying (the log names the control plane it waits for) instead of exiting.
    await waitUntil(() => sidecar.child.output().includes(cp.grpcAddress), { what: 'the log to name the control plane', timeoutMs: 15_000 });
    await waitUntil(() => sidecar.child.output().includes('"attempt":3'), { what: 'a third attempt', timeoutMs: 15_000 });
    expect(sidecar.child.hasExited).toBe(false);
    const waiting = await fetch(`${sidecar.adminUrl}/ready`);
    expect(waiting.status).toBe(503);
    expect(await waiting.text()).toContain(`waiting for a certificate from the control plane at ${cp.grpcAddress}`);
    expect((await fetch(`${sidecar.adminUrl}/live`)).status).toBe(200);

    const back = await startControlPlane(procs, { dataDir: cp.dataDir, httpPort: cp.httpPort, grpcPort: cp.grpcPort });
    await waitUntil(async () => (await fetch(`${sidecar.adminUrl}/ready`)).status === 200, { what: 'ready once the control plane is back', timeoutMs: 30_000 }).catch((err: Error) => {
      throw new Error(`${err.message}\n${sidecar.child.output()}`);
    });
    await waitUntil(async () => (await back.api.get<{ proxies: { state: string }[] }>('/api/v1/proxies')).body.proxies[0]?.state === 'SYNCED', { what: 'SYNCED' });
  }, 60_000);
});
