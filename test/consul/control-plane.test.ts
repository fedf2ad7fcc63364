/**
 * The control plane with `--consul --store consul`, against a real agent: two replicas share
 * config through Consul KV (a change written through either reaches sidecars connected to
 * both), and `GET /api/v1/services` / `skein get services` list what Consul's catalog holds.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { startControlPlane } from '../control-plane/harness.js';
import { skeinCli, startMeshSidecar } from '../identity/mesh.js';
import { Processes, waitUntil } from '../support/index.js';
import { startConsul, type ConsulAgent } from '../support/consul.js';
import { consulTeardown, switchableApp, type SwitchableApp } from './fixture.js';

describe('control plane on Consul (catalog and KV store)', { timeout: 90_000 }, () => {
  let consul: ConsulAgent;
  const procs = new Processes();
  const apps: SwitchableApp[] = [];

  beforeAll(async () => {
    consul = await startConsul();
  }, 60_000);
  consulTeardown(procs, apps, () => consul);

  const replica = () => startControlPlane(procs, { args: ['--consul', consul.url, '--store', 'consul'] });

  it('a split written through either replica reaches sidecars on both; both list the Consul catalog', async () => {
    const [cpA, cpB] = [await replica(), await replica()];
    const a = await switchableApp('a');
    const b = await switchableApp('b');
    apps.push(a, b);
    const onA = await startMeshSidecar(procs, cpA, { service: 'catalog', version: 'v1', appPort: a.port, extraArgs: ['--consul', consul.url] });
    const onB = await startMeshSidecar(procs, cpB, { service: 'catalog', version: 'v2', appPort: b.port, extraArgs: ['--consul', consul.url] });

    // Both replicas see both instances, from Consul (not from their own streams).
    for (const cp of [cpA, cpB]) {
      await waitUntil(async () => {
        const services = (await cp.api.get<{ name: string; instances: { port: number; version: string; health: string }[] }[]>('/api/v1/services')).body;
        const catalog = services.find((s) => s.name === 'catalog');
        return catalog?.instances.filter((i) => i.health === 'healthy').length === 2;
      }, { timeoutMs: 15_000, what: `${cp.adminUrl} to list both catalog instances` });
    }
    const cli = await skeinCli(procs, cpB, ['get', 'services', '--output', 'json']);
    expect(cli.code).toBe(0);
    expect(cli.output).toContain(String(onA.inboundPort));
    expect(cli.output).toContain(String(onB.inboundPort));

    const routesOf = async (sidecarAdmin: string) => {
      const config = (await (await fetch(`${sidecarAdmin}/config`)).json()) as { snapshot: { routes: Record<string, { split?: Record<string, number> }[]> } };
      return config.snapshot.routes.catalog?.at(-1)?.split;
    };
    expect((await cpA.api.put('/api/v1/routes/catalog/split', { v1: 80, v2: 20 })).status).toBe(200);
    for (const sc of [onA, onB]) await waitUntil(async () => (await routesOf(sc.adminUrl))?.v2 === 20, { timeoutMs: 5_000, what: 'split 80/20 on both sidecars' });
    expect((await cpB.api.put('/api/v1/routes/catalog/split', { v1: 10, v2: 90 })).status).toBe(200);
    for (const sc of [onA, onB]) await waitUntil(async () => (await routesOf(sc.adminUrl))?.v2 === 90, { timeoutMs: 5_000, what: 'split 10/90 on both sidecars' });
    // Stored in Consul KV under skein/.
    const keys = await consul.get<string[]>('/kv/skein/?keys');
    expect(keys).toContain('skein/routes/catalog');

    // An instance whose check fails shows as critical and leaves the pushed endpoints.
    a.healthy = false;
    await waitUntil(async () => {
      const services = (await cpA.api.get<{ name: string; instances: { port: number; health: string }[] }[]>('/api/v1/services')).body;
      return services.find((s) => s.name === 'catalog')?.instances.find((i) => i.port === onA.inboundPort)?.health === 'critical';
    }, { timeoutMs: 15_000, what: 'a critical in the API' });
    // The services view reads the catalog as it is; the snapshot follows once the change's
    // coalescing window (--coalesce, 5 ms) has passed, so it is polled, briefly.
    await waitUntil(async () => {
      const snapshot = (await cpA.api.get<{ services: Record<string, { endpoints: { port: number }[] }> }>('/api/v1/snapshot')).body;
      return !snapshot.services.catalog!.endpoints.some((e) => e.port === onA.inboundPort);
    }, { timeoutMs: 2_000, what: 'the critical instance to leave the pushed endpoints' });
  });

  it('concurrent check-and-set writes through two replicas: one wins, the other gets a conflict', async () => {
    const [cpA, cpB] = [await replica(), await replica()];
    expect((await cpA.api.put('/api/v1/services/orders/policy', { timeout: '2s' })).status).toBe(200);
    const current = await cpB.api.get<unknown>('/api/v1/services/orders/policy');
    const etag = current.headers.get('etag')!;
    expect(etag).toBeTruthy();
    const first = await cpA.api.put('/api/v1/services/orders/policy', { timeout: '3s' }, { 'if-match': etag });
    const second = await cpB.api.put('/api/v1/services/orders/policy', { timeout: '4s' }, { 'if-match': etag }).catch((err: { status: number }) => err);
    expect(first.status).toBe(200);
    expect(second.status).toBe(412);
    expect((await cpB.api.get<{ timeout: string }>('/api/v1/services/orders/policy')).body).toMatchObject({ timeout: '3s' });
  });
});
