/**
 * Keepalive pings find dead streams on both ends even when no snapshot flows: a frozen
 * sidecar (SIGSTOP) is dropped by the control plane, and a frozen control plane is
 * noticed by the sidecar, which then reconnects once it answers again.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { parseSnapshot } from '../../common/config/parse.js';
import type { ControlPlaneSource } from '../../sidecar/control-plane/source.js';
import { echoHandler, Processes, startUpstream, waitUntil, type Child, type TestUpstream } from '../support/index.js';
import { startMeshSidecar } from '../identity/mesh.js';
import { createToken, startControlPlane, testSource } from './harness.js';

const procs = new Processes();
const apps: TestUpstream[] = [];
const sources: ControlPlaneSource[] = [];
/** Stopped processes, continued before they are killed. */
const frozen: Child[] = [];

function freeze(child: Child): void {
  child.process.kill('SIGSTOP');
  frozen.push(child);
}

afterEach(async () => {
  await Promise.all(sources.splice(0).map((s) => s.close()));
  for (const child of frozen.splice(0)) child.process.kill('SIGCONT');
  await procs.killAll();
  await Promise.all(apps.splice(0).map((a) => a.close()));
});

async function services(cp: Awaited<ReturnType<typeof startControlPlane>>) {
  return (await cp.api.get<{ name: string; instances: { health: string }[] }[]>('/api/v1/services')).body;
}

describe('keepalive', () => {
  it('the control plane drops a frozen sidecar and marks its instance disconnected', async () => {
    const cp = await startControlPlane(procs, { args: ['--keepalive', '1s'] });
    const app = await startUpstream(echoHandler('catalog'));
    apps.push(app);
    const sidecar = await startMeshSidecar(procs, cp, { service: 'catalog', appPort: app.port });
    await waitUntil(async () => (await cp.api.get<{ proxies: unknown[] }>('/api/v1/proxies')).body.proxies.length === 1, { what: 'connected' });
    freeze(sidecar.child);
    const frozenAt = Date.now();
    await waitUntil(async () => (await cp.api.get<{ proxies: unknown[] }>('/api/v1/proxies')).body.proxies.length === 0, { what: 'the frozen sidecar dropped', timeoutMs: 10_000 });
    expect(Date.now() - frozenAt).toBeLessThan(8_000);
    // Within the grace period the instance stays, disconnected.
    expect((await services(cp)).find((s) => s.name === 'catalog')!.instances).toEqual([expect.objectContaining({ health: 'disconnected' })]);
  }, 60_000);

  it('a sidecar notices a frozen control plane and reconnects when it thaws', async () => {
    const cp = await startControlPlane(procs);
    const source = testSource(cp, { service: 'catalog', instanceId: 'catalog-1', token: await createToken(cp, 'catalog'), keepaliveMs: 1_000, backoff: { baseMs: 50, maxMs: 200 } });
    sources.push(source);
    await source.start((raw) => void parseSnapshot(raw));
    await waitUntil(() => source.hasSnapshot, { what: 'first snapshot' });
    freeze(cp.child);
    const frozenAt = Date.now();
    await waitUntil(() => /unreachable/.test(source.status), { what: 'the sidecar to notice', timeoutMs: 10_000 });
    expect(Date.now() - frozenAt).toBeLessThan(8_000);
    expect(source.hasSnapshot).toBe(true);
    cp.child.process.kill('SIGCONT');
    await waitUntil(() => /^connected/.test(source.status), { what: 'reconnected', timeoutMs: 15_000 });
    // The frozen stream is gone from the control plane's view; the new one is SYNCED.
    await waitUntil(async () => {
      const proxies = (await cp.api.get<{ proxies: { state: string }[] }>('/api/v1/proxies')).body.proxies;
      return proxies.length === 1 && proxies[0]!.state === 'SYNCED';
    }, { what: 'one SYNCED proxy', timeoutMs: 15_000 });
  });
});
