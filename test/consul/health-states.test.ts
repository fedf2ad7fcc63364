/**
 * Health states as Consul's own service mesh treats them, against a real agent through real
 * sidecars: an instance whose check is in `warning` keeps receiving traffic, one in `critical`
 * stops, both when a `--consul` sidecar watches the destination itself and when a sidecar
 * routes by the control plane's pushed endpoints. The state comes from a second HTTP check on
 * the instance (as an operator adds one), whose target answers 429 (Consul's HTTP check reads
 * it as warning) or 500 (critical).
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startControlPlane } from '../control-plane/harness.js';
import { answeredBy, startMeshSidecar } from '../identity/mesh.js';
import { freePort, Processes, startUpstream, waitUntil, type TestUpstream } from '../support/index.js';
import { startConsul, type ConsulAgent, type HealthEntry } from '../support/consul.js';
import { consulConfig, consulTeardown, switchableApp, type SwitchableApp } from './fixture.js';

/** What a check target answers Consul: 200 passing, 429 warning, 500 critical. */
interface CheckTarget extends TestUpstream {
  status: number;
}

async function checkTarget(): Promise<CheckTarget> {
  const state = { status: 200 };
  const upstream = await startUpstream((_req, res) => void res.writeHead(state.status).end());
  return Object.defineProperty(upstream, 'status', { get: () => state.status, set: (v: number) => (state.status = v) }) as CheckTarget;
}

async function endpointPorts(sidecar: { adminUrl: string }, service: string): Promise<number[]> {
  const clusters = (await (await fetch(`${sidecar.adminUrl}/clusters`)).json()) as Record<string, { endpoints: { port: number }[] }>;
  return (clusters[service]?.endpoints ?? []).map((e) => e.port).sort();
}

describe('instances in warning receive traffic, critical ones do not (as in Consul\'s mesh)', { timeout: 120_000 }, () => {
  let consul: ConsulAgent;
  const procs = new Processes();
  const apps: SwitchableApp[] = [];
  const targets: CheckTarget[] = [];

  beforeAll(async () => {
    consul = await startConsul();
  }, 60_000);
  consulTeardown(procs, apps, () => consul);
  afterEach(async () => {
    for (const target of targets.splice(0)) await target.close();
  });

  const app = async (name: string): Promise<SwitchableApp> => {
    const a = await switchableApp(name);
    apps.push(a);
    return a;
  };

  /** Adds a second HTTP check (answering 200 at first) to the catalog instance on `port`; returns its target. */
  const secondCheck = async (port: number): Promise<CheckTarget> => {
    const target = await checkTarget();
    targets.push(target);
    const entries = (await consul.get<HealthEntry[]>('/health/service/catalog')) ?? [];
    const id = entries.find((e) => e.Service.Port === port)!.Service.ID;
    await consul.put('/agent/check/register', { ID: `second-${id}`, Name: 'second check', ServiceID: id, HTTP: target.url, Interval: '1s', Status: 'passing' });
    return target;
  };

  /** Waits until Consul's health of the catalog instance on `port` is `status` (its worst check). */
  const consulSays = (port: number, status: 'warning' | 'critical') =>
    waitUntil(async () => {
      const entries = (await consul.get<HealthEntry[]>('/health/service/catalog')) ?? [];
      const checks = entries.find((e) => e.Service.Port === port)?.Checks.map((c) => c.Status) ?? [];
      return checks.includes(status) && (status === 'critical' || !checks.includes('critical'));
    }, { timeoutMs: 15_000, what: `Consul to list the instance on ${port} in ${status}` });

  it('a --consul sidecar keeps routing to an instance in warning and stops routing to one in critical', async () => {
    const [a, b] = [await app('a'), await app('b')];
    const config = consulConfig(['catalog']);
    const sidecar = (service: string, appPort: number) => procs.sidecar({ service, appPort, config, drainTimeout: '5s', extraArgs: ['--consul', consul.url] });
    const [sa, sb] = [await sidecar('catalog', a.port), await sidecar('catalog', b.port)];
    const caller = await sidecar('web', (await app('web')).port);
    const both = [sa.inboundPort, sb.inboundPort].sort();
    await waitUntil(async () => JSON.stringify(await endpointPorts(caller, 'catalog')) === JSON.stringify(both), { timeoutMs: 20_000, what: 'the caller to route to both instances' });
    const target = await secondCheck(sb.inboundPort);

    target.status = 429;
    await consulSays(sb.inboundPort, 'warning');
    // A change after the warning that the caller must see: once it has, it has read the warning too.
    const marker = await freePort();
    await consul.put('/agent/service/register', { ID: 'marker', Name: 'catalog', Address: '127.0.0.1', Port: marker });
    await waitUntil(async () => (await endpointPorts(caller, 'catalog')).includes(marker), { timeoutMs: 10_000, what: 'the caller to see the marker instance' });
    await consul.put('/agent/service/deregister/marker');
    await waitUntil(async () => !(await endpointPorts(caller, 'catalog')).includes(marker), { timeoutMs: 10_000, what: 'the marker gone again' });
    expect(await endpointPorts(caller, 'catalog')).toEqual(both);
    expect(new Set(await answeredBy(caller, 'catalog', 10, '/item'))).toEqual(new Set(['a', 'b']));

    target.status = 500;
    await consulSays(sb.inboundPort, 'critical');
    await waitUntil(async () => JSON.stringify(await endpointPorts(caller, 'catalog')) === JSON.stringify([sa.inboundPort]), { timeoutMs: 10_000, what: 'the critical instance out of the caller\'s endpoints' });
    expect(await answeredBy(caller, 'catalog', 10, '/item')).toEqual(Array(10).fill('a'));
  });

  it('the control plane lists an instance in warning as `warning` and pushes it as an endpoint; one in critical is listed `critical` and not pushed', async () => {
    const cp = await startControlPlane(procs, { args: ['--consul', consul.url] });
    const [a, b] = [await app('a'), await app('b')];
    const onConsul = ['--consul', consul.url];
    const sa = await startMeshSidecar(procs, cp, { service: 'catalog', appPort: a.port, extraArgs: onConsul });
    const sb = await startMeshSidecar(procs, cp, { service: 'catalog', appPort: b.port, extraArgs: onConsul });
    // Without --consul: its endpoints are the control plane's pushed ones (and it is in no registry).
    const caller = await startMeshSidecar(procs, cp, { service: 'web', appPort: (await app('web')).port, listed: false });
    // With --consul: its own watch of catalog, from its first request on.
    const watcher = await startMeshSidecar(procs, cp, { service: 'shop', appPort: (await app('shop')).port, extraArgs: onConsul });
    const both = [sa.inboundPort, sb.inboundPort].sort();
    const routeTo = (ports: number[], what: string) =>
      waitUntil(async () => {
        const seen = [await endpointPorts(caller, 'catalog'), await endpointPorts(watcher, 'catalog')];
        return seen.every((p) => JSON.stringify(p) === JSON.stringify(ports));
      }, { timeoutMs: 15_000, what: `both callers to route to ${what}` });
    await routeTo(both, 'both instances');
    await answeredBy(watcher, 'catalog', 2, '/item');
    await waitUntil(() => watcher.child.output().includes('"endpoints from Consul"'), { timeoutMs: 10_000, what: "the --consul caller's own watch of catalog" });
    const listed = async (port: number) => {
      const services = (await cp.api.get<{ name: string; instances: { port: number; health: string }[] }[]>('/api/v1/services')).body;
      return services.find((s) => s.name === 'catalog')?.instances.find((i) => i.port === port)?.health;
    };
    const target = await secondCheck(sb.inboundPort);

    target.status = 429;
    await consulSays(sb.inboundPort, 'warning');
    await waitUntil(async () => (await listed(sb.inboundPort)) === 'warning', { timeoutMs: 10_000, what: 'the instance listed in warning by the control plane' });
    const pushed = (await cp.api.get<{ services: Record<string, { endpoints: { port: number }[] }> }>('/api/v1/snapshot')).body.services.catalog!.endpoints.map((e) => e.port).sort();
    expect(pushed).toEqual(both);
    await routeTo(both, 'both instances, the one in warning included');
    for (const from of [caller, watcher]) expect(new Set(await answeredBy(from, 'catalog', 10, '/item'))).toEqual(new Set(['a', 'b']));

    // onlyPassing (a service-resolver's OnlyPassing): the pushed endpoints and the --consul caller's watch both leave it out.
    expect((await cp.api.put('/api/v1/services/catalog/policy', { onlyPassing: true })).status).toBe(200);
    await routeTo([sa.inboundPort], 'the passing instance alone (onlyPassing)');
    for (const from of [caller, watcher]) expect(await answeredBy(from, 'catalog', 6, '/item')).toEqual(Array(6).fill('a'));
    expect((await cp.api.delete('/api/v1/services/catalog/policy')).status).toBe(204);
    await routeTo(both, 'both instances again without onlyPassing');

    target.status = 500;
    await consulSays(sb.inboundPort, 'critical');
    await waitUntil(async () => (await listed(sb.inboundPort)) === 'critical', { timeoutMs: 10_000, what: 'the instance listed critical by the control plane' });
    await routeTo([sa.inboundPort], 'the passing instance alone (the other critical)');
    for (const from of [caller, watcher]) expect(await answeredBy(from, 'catalog', 6, '/item')).toEqual(Array(6).fill('a'));
  });
});
