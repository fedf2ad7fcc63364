/**
 * The control plane driving real sidecar processes: a split changed through the admin API
 * moves measured traffic within a second; killing the control plane under load loses no
 * request, and after a restart every sidecar resyncs and follows new changes again.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { echoHandler, Processes, startUpstream, waitUntil, type TestUpstream } from '../support/index.js';
import { answeredBy, startMeshSidecar, steadyLoad, type MeshSidecar } from '../identity/mesh.js';
import { startControlPlane, type ControlPlaneProcess } from './harness.js';

const procs = new Processes();
const apps: TestUpstream[] = [];
let cp: ControlPlaneProcess;
let frontend: MeshSidecar;

async function app(name: string): Promise<number> {
  const u = await startUpstream(echoHandler(name));
  apps.push(u);
  return u.port;
}

/** Which catalog app answered each of `n` requests through the frontend's sidecar. */
const sample = (n: number): Promise<string[]> => answeredBy(frontend, 'catalog', n);

async function proxyStates(): Promise<string[]> {
  return (await cp.api.get<{ proxies: { state: string }[] }>('/api/v1/proxies')).body.proxies.map((p) => p.state);
}

beforeAll(async () => {
  // Sidecars back off up to 5 s while the control plane is down; the hold must outlast that.
  cp = await startControlPlane(procs, { args: ['--resync-hold', '6s'] });
  [frontend] = await Promise.all([
    startMeshSidecar(procs, cp, { service: 'frontend', appPort: await app('frontend') }),
    startMeshSidecar(procs, cp, { service: 'catalog', version: 'v1', appPort: await app('catalog-v1') }),
    startMeshSidecar(procs, cp, { service: 'catalog', version: 'v2', appPort: await app('catalog-v2') }),
  ]);
  await cp.api.put('/api/v1/routes/catalog/split', { v1: 100 });
  await waitUntil(async () => (await sample(5)).every((n) => n === 'catalog-v1'), { what: 'frontend to reach catalog v1', timeoutMs: 15_000 });
}, 90_000);

afterAll(async () => {
  await procs.killAll();
  await Promise.all(apps.map((a) => a.close()));
});

describe('control plane with real sidecars', () => {
  it('warns at start of a --resync-hold that does not outlast the sidecars\' reconnect backoff, and only then', async () => {
    const warning = "--resync-hold is not longer than the sidecars' 5 s reconnect backoff";
    expect(cp.child.output()).not.toContain(warning);
    const short = await startControlPlane(procs, { args: ['--resync-hold', '3s'] });
    expect(short.child.output()).toContain(warning);
    short.child.kill('SIGTERM');
    await short.child.exited;
  });

  it('moves traffic within a second of a split change through the admin API', async () => {
    const started = Date.now();
    await cp.api.put('/api/v1/routes/catalog/split', { v2: 100 });
    let streak = 0;
    let switchedAt = 0;
    await waitUntil(
      async () => {
        const [name] = await sample(1);
        if (name !== 'catalog-v2') streak = 0;
        else if (++streak === 1) switchedAt = Date.now();
        return streak >= 20;
      },
      { timeoutMs: 5_000, intervalMs: 1, what: '20 answers in a row from v2' },
    );
    expect(switchedAt - started).toBeLessThan(1_000);

    await cp.api.put('/api/v1/routes/catalog/split', { v1: 80, v2: 20 });
    await waitUntil(async () => (await proxyStates()).every((s) => s === 'SYNCED'), { what: 'every proxy SYNCED' });
    const names = await sample(300);
    const v2 = names.filter((n) => n === 'catalog-v2').length;
    expect(names.filter((n) => !n.startsWith('catalog-'))).toEqual([]);
    expect(v2).toBeGreaterThan(30);
    expect(v2).toBeLessThan(95);
  });

  it('loses no request when the control plane is killed under load, and resyncs after a restart', async () => {
    const load = steadyLoad(frontend, 'catalog', 4);
    await waitUntil(() => load.ok > 50, { what: 'load to flow' });
    cp.child.kill('SIGKILL');
    await cp.child.exited;
    const before = load.ok;
    await waitUntil(() => load.ok > before + 300, { what: 'requests to keep succeeding without the control plane', timeoutMs: 20_000 });
    const ready = await fetch(`${frontend.adminUrl}/ready`);
    expect(ready.status).toBe(200);

    cp = await startControlPlane(procs, { dataDir: cp.dataDir, httpPort: cp.httpPort, grpcPort: cp.grpcPort, args: ['--resync-hold', '6s'] });
    await waitUntil(async () => {
      const states = await proxyStates();
      return states.length === 3 && states.every((s) => s === 'SYNCED');
    }, { what: 'all three sidecars to resync', timeoutMs: 20_000 });
    const result = await load.stop();
    expect(result.failures).toEqual([]);
    expect(result.ok).toBeGreaterThan(before + 300);

    // The restarted control plane still drives the mesh.
    await cp.api.put('/api/v1/routes/catalog/split', { v1: 100 });
    await waitUntil(async () => (await sample(10)).every((n) => n === 'catalog-v1'), { what: 'split after restart', timeoutMs: 2_000 });
  });
});
