/**
 * Sidecars against a real Consul agent: registration, health-driven removal without failed
 * requests, deregistration on SIGTERM, agent crash and restart under load. One agent for the
 * file; services are cleaned between tests.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { Agent, request } from 'undici';
import { Processes, waitUntil, type SpawnedSidecar } from '../support/index.js';
import { startConsul, type ConsulAgent } from '../support/consul.js';
import { startControlPlane } from '../control-plane/harness.js';
import { startMeshSidecar } from '../identity/mesh.js';
import { consulConfig, startLoad, switchableApp, type Load, type SwitchableApp } from './fixture.js';

describe('sidecar discovery through Consul', { timeout: 60_000 }, () => {
  let consul: ConsulAgent;
  const procs = new Processes();
  const http = new Agent({ keepAliveTimeout: 1000, connections: 16 });
  const apps: SwitchableApp[] = [];
  const loads: Load[] = [];
  const steadyLoad = (url: string): Load => {
    const l = startLoad(http, url, 'catalog');
    loads.push(l);
    return l;
  };

  beforeAll(async () => {
    consul = await startConsul();
  }, 60_000);
  afterEach(async () => {
    for (const load of loads.splice(0)) await load.stop();
    await procs.killAll();
    for (const app of apps.splice(0)) await app.close();
    await consul.restartIfDown();
    await consul.reset();
  });
  afterAll(async () => {
    await consul?.stop();
    await http.close();
  });

  const app = async (name: string): Promise<SwitchableApp> => {
    const a = await switchableApp(name);
    apps.push(a);
    return a;
  };

  const sidecar = (service: string, appPort: number, config: string, version = 'v1', waitFor: '/ready' | '/live' = '/ready'): Promise<SpawnedSidecar> =>
    procs.sidecar({ service, version, appPort, config, waitFor, drainTimeout: '5s', extraArgs: ['--consul', consul.url] });

  const passingPorts = async (service: string): Promise<number[]> => (await consul.passing(service)).map((e) => e.Service.Port).sort();

  /** Two catalog instances and a caller whose endpoints for catalog come from Consul. */
  const mesh = async (config = consulConfig(['catalog'])) => {
    const [a, b] = [await app('a'), await app('b')];
    const sa = await sidecar('catalog', a.port, config, 'v1');
    const sb = await sidecar('catalog', b.port, config, 'v2');
    const caller = await sidecar('web', (await app('web')).port, config);
    await waitUntil(async () => (await passingPorts('catalog')).length === 2, { timeoutMs: 15_000, what: 'both catalog instances passing' });
    const both = [sa.inboundPort, sb.inboundPort].sort();
    await waitUntil(async () => JSON.stringify(await clusterPorts(caller, 'catalog')) === JSON.stringify(both), { timeoutMs: 10_000, what: 'the caller to see both instances' });
    return { a, b, sa, sb, caller };
  };

  it('registers the instance with address, inbound port, tags, meta and a 2 s HTTP check on /ready', async () => {
    const a = await app('a');
    const sc = await sidecar('catalog', a.port, consulConfig([]), 'v2');
    const [entry] = await waitUntil(async () => {
      const list = await consul.passing('catalog');
      return list.length === 1 && list;
    }, { timeoutMs: 15_000, what: 'catalog passing in Consul' });
    expect(entry!.Service.Address).toBe('127.0.0.1');
    expect(entry!.Service.Port).toBe(sc.inboundPort);
    expect(entry!.Service.Tags).toEqual(['v2']);
    expect(entry!.Service.Meta).toMatchObject({ version: 'v2', protocol: 'http' });
    expect(entry!.Service.ID).toMatch(/^catalog-v2-/);
    const check = entry!.Checks.find((c) => c.ServiceID === entry!.Service.ID)!;
    expect(check.Status).toBe('passing');
    const def = await consul.get<{ Definition?: unknown }[]>(`/agent/checks`);
    expect(JSON.stringify(def)).toContain(`http://127.0.0.1:${sc.adminPort}/ready`);
    const catalog = await consul.get<{ ServiceAddress: string; ServicePort: number; ServiceMeta: Record<string, string> }[]>('/catalog/service/catalog');
    expect(catalog).toMatchObject([{ ServiceAddress: '127.0.0.1', ServicePort: sc.inboundPort, ServiceMeta: { version: 'v2', protocol: 'http' } }]);
    const registered = await consul.get<{ Checks?: unknown }>(`/agent/service/${entry!.Service.ID}`);
    expect(registered).toBeDefined();
  });

  it('registers through an agent given by an IPv6 URL (http://[::1]:PORT)', async () => {
    const v6 = await startConsul({ hcl: 'addresses { http = "127.0.0.1 ::1" }' });
    try {
      const a = await app('a');
      const sc = await procs.sidecar({ service: 'catalog', appPort: a.port, config: consulConfig([]), extraArgs: ['--consul', `http://[::1]:${v6.httpPort}`] });
      const [entry] = await waitUntil(async () => {
        const list = await v6.passing('catalog');
        return list.length === 1 && list;
      }, { timeoutMs: 15_000, what: 'catalog passing in the agent on ::1' });
      expect(entry!.Service.Port).toBe(sc.inboundPort);
      expect(sc.output()).toContain('"consul":"http://[::1]:');
    } finally {
      await v6.stop();
    }
  });

  it('with --inbound-port 0 and --admin-port 0, registers and logs the ports it bound, and its check passes', async () => {
    const a = await app('a');
    const sc = procs.skein('catalog on port 0', [
      'sidecar', '--service', 'catalog', '--app-port', String(a.port), '--config', consulConfig([]), '--inbound-host', '127.0.0.1',
      '--inbound-port', '0', '--outbound-port', '0', '--admin-port', '0', '--advertise-address', '127.0.0.1', '--consul', consul.url,
    ]);
    const [entry] = await waitUntil(async () => {
      const list = await consul.passing('catalog');
      return list.length === 1 && list;
    }, { timeoutMs: 15_000, what: 'catalog passing in Consul (its check on the admin port bound)' });
    const listening = JSON.parse(sc.output().split('\n').find((l) => l.includes('"sidecar listening"'))!) as { inbound: string; admin: string };
    const admin = Number(listening.admin.split(':')[1]);
    expect(entry!.Service.Port).toBeGreaterThan(0);
    expect(listening.inbound).toBe(`127.0.0.1:${entry!.Service.Port}`);
    expect(admin).toBeGreaterThan(0);
    expect(JSON.stringify(await consul.get('/agent/checks'))).toContain(`http://127.0.0.1:${admin}/ready?instance=`);
  });

  it('with --inbound-host 127.0.0.1 and no --advertise-address, registers 127.0.0.1 (where it listens), and a caller reaches it', async () => {
    const a = await app('a');
    procs.skein('catalog on loopback', [
      'sidecar', '--service', 'catalog', '--app-port', String(a.port), '--config', consulConfig([]), '--inbound-host', '127.0.0.1',
      '--inbound-port', '0', '--outbound-port', '0', '--admin-port', '0', '--consul', consul.url,
    ]);
    const [entry] = await waitUntil(async () => {
      const list = await consul.passing('catalog');
      return list.length === 1 && list;
    }, { timeoutMs: 15_000, what: 'catalog passing in Consul' });
    expect(entry!.Service.Address).toBe('127.0.0.1');
    const caller = await sidecar('web', (await app('web')).port, consulConfig(['catalog']));
    await waitUntil(async () => (await clusterPorts(caller, 'catalog')).length === 1, { timeoutMs: 10_000, what: 'the caller to see catalog' });
    const res = await request(`${caller.outboundUrl}/item`, { dispatcher: http, headers: { host: 'catalog' } });
    expect(res.statusCode).toBe(200);
    expect(await res.body.json()).toEqual({ name: 'a' });
  });

  it('after a SIGKILL and a restart on the same ports, the old registration\'s check fails (and Consul reaps it) while the new one passes', async () => {
    const a = await app('a');
    const config = consulConfig([]);
    const first = await sidecar('catalog', a.port, config);
    const [old] = await waitUntil(async () => {
      const list = await consul.passing('catalog');
      return list.length === 1 && list;
    }, { timeoutMs: 15_000, what: 'the first instance passing' });
    first.kill('SIGKILL');
    await first.exited;
    const second = await procs.sidecar({ service: 'catalog', appPort: a.port, config, inboundPort: first.inboundPort, adminPort: first.adminPort, extraArgs: ['--consul', consul.url] });
    const passing = await waitUntil(async () => {
      const list = await consul.passing('catalog');
      return list.length === 1 && list[0]!.Service.ID !== old!.Service.ID && list;
    }, { timeoutMs: 15_000, what: 'only the restarted instance passing' });
    expect(passing[0]!.Service.Port).toBe(first.inboundPort);
    // The old check may last have run while nothing listened on the port (connection refused):
    // its next run, on the restarted admin port, is the one that names the instance.
    const oldCheck = await waitUntil(async () => {
      const entries = (await consul.get<{ Checks: { ServiceID: string; Status: string; Output: string }[] }[]>('/health/service/catalog'))!;
      const check = entries.flatMap((e) => e.Checks).find((c) => c.ServiceID === old!.Service.ID);
      return check !== undefined && !check.Output.includes('connection refused') && check;
    }, { timeoutMs: 15_000, what: 'the old check run against the restarted admin port' });
    expect(oldCheck.Status).toBe('critical');
    expect(oldCheck.Output).toContain(`this admin port belongs to instance "${passing[0]!.Service.ID}", not "${old!.Service.ID}"`);
    const asked = await fetch(`${second.adminUrl}/ready?instance=${old!.Service.ID}`);
    expect(asked.status).toBe(503);
  });

  it('subsets select on the labels Consul gives endpoints: version from meta, tag:<tag> from tags', async () => {
    // v1 by meta, v2 by tag: each subset holds exactly one of the two instances.
    const config = consulConfig(['catalog'], {
      subsets: { v1: { version: 'v1' }, v2: { 'tag:v2': 'true' } },
      routes: { catalog: [{ split: { v1: 0, v2: 100 } }] },
    });
    const { a, b, caller } = await mesh(config);
    const traffic = steadyLoad(caller.outboundUrl);
    await waitUntil(() => traffic.answers.length >= 40, { what: '40 answers' });
    await traffic.stop();
    expect(traffic.failures()).toEqual([]);
    expect(new Set(traffic.answers.map((x) => x.name))).toEqual(new Set(['b']));
    expect(a.served).toBe(0);
    expect(b.served).toBeGreaterThanOrEqual(40);
  });

  it('an instance whose app turns unhealthy leaves callers\' endpoint sets; traffic moves away with no failed request', async () => {
    const { a, b, sa, sb, caller } = await mesh();
    const traffic = steadyLoad(caller.outboundUrl);
    await waitUntil(() => traffic.answers.filter((x) => x.name === 'a').length > 5 && traffic.answers.filter((x) => x.name === 'b').length > 5, { what: 'traffic on both instances' });
    a.healthy = false;
    // app health fails → sidecar /ready 503 → Consul check critical → out of the passing set → caller drops it.
    await waitUntil(async () => (await passingPorts('catalog')).join() === String(sb.inboundPort), { timeoutMs: 15_000, what: 'a out of the passing set' });
    await waitUntil(async () => (await clusterPorts(caller, 'catalog')).join() === String(sb.inboundPort), { timeoutMs: 5_000, what: 'the caller to drop a' });
    const dropped = Date.now();
    // A request sent to a just before the drop may still be on its way: count from after it.
    await waitUntil(() => traffic.settledSince(dropped), { what: 'requests sent before the drop to finish' });
    const servedByA = a.served;
    await waitUntil(() => traffic.sentAfter(dropped).length > 50, { what: '50 more answers' });
    await traffic.stop();
    expect(traffic.failures()).toEqual([]);
    expect(a.served).toBe(servedByA);
    expect(traffic.sentAfter(dropped).map((x) => x.name)).toEqual(traffic.sentAfter(dropped).map(() => 'b'));
    expect(b.served).toBeGreaterThan(50);
    // And back: healthy again → passing again → the caller uses it again.
    a.healthy = true;
    await waitUntil(async () => (await clusterPorts(caller, 'catalog')).length === 2, { timeoutMs: 15_000, what: 'a back in the caller' });
    expect(sa.hasExited).toBe(false);
  });

  it('SIGTERM fails /ready at once, deregisters while draining, and exits without failing a request', async () => {
    const { sa, caller } = await mesh();
    // This test once failed on a fresh CI machine and passed on its retry; a retried attempt's
    // error is not reported, so the sidecar's own account goes to the output.
    onTestFailed(() => console.error(`sidecar a's output:\n${sa.output()}`));
    const traffic = steadyLoad(caller.outboundUrl);
    await waitUntil(() => traffic.answers.length > 20, { what: 'traffic' });
    sa.kill('SIGTERM');
    await waitUntil(async () => (await consul.get<Record<string, unknown>>('/agent/services'))!, { what: 'agent services' });
    const gone = await waitUntil(async () => {
      const services = (await consul.get<Record<string, { Port: number }>>('/agent/services'))!;
      return !Object.values(services).some((s) => s.Port === sa.inboundPort) && Date.now();
    }, { timeoutMs: 5_000, what: 'a deregistered' });
    const exit = await sa.exited;
    expect(exit.code).toBe(0);
    // 'exit' can come before the last of the child's stdout has been read: poll for the lines.
    await waitUntil(() => /draining: \/ready is 503[\s\S]*deregistered from Consul/.test(sa.output()), { timeoutMs: 5_000, what: 'the log to show the drain starting, then the deregistration' });
    await waitUntil(async () => (await clusterPorts(caller, 'catalog')).length === 1, { what: 'the caller to drop a' });
    const mark = traffic.answers.length;
    await waitUntil(() => traffic.answers.length > mark + 20, { what: 'more answers' });
    await traffic.stop();
    expect(traffic.failures()).toEqual([]);
    expect(gone).toBeGreaterThan(0);
  });

  it('a Consul crash under load fails no request; the restarted agent gets the registrations back', async () => {
    const { sa, sb, caller } = await mesh();
    const traffic = steadyLoad(caller.outboundUrl);
    await waitUntil(() => traffic.answers.length > 20, { what: 'traffic' });
    await consul.kill();
    const mark = traffic.answers.length;
    await waitUntil(() => traffic.answers.length > mark + 100, { timeoutMs: 15_000, what: 'answers while Consul is down' });
    expect(new Set(traffic.answers.slice(mark).map((x) => x.name))).toEqual(new Set(['a', 'b']));
    await waitUntil(() => /watching catalog in Consul failed: .*; keeping the last known endpoints and retrying/.test(caller.output()), { what: 'the caller to log the outage' });
    await consul.restart();
    // Each sidecar's keeper notices on its own (after its backoff), so wait for every one.
    await waitUntil(async () => (await passingPorts('catalog')).join() === [sa.inboundPort, sb.inboundPort].sort().join(), { timeoutMs: 20_000, what: 'registrations restored' });
    await waitUntil(async () => (await consul.passing('web')).length === 1, { timeoutMs: 20_000, what: 'the caller registered again' });
    await traffic.stop();
    expect(traffic.failures()).toEqual([]);
    expect(sa.output()).toMatch(/the Consul agent had lost this instance; registered again/);
  });

  it('in control-plane mode (control plane and sidecars on Consul), a Consul crash under load fails no request', { timeout: 120_000 }, async () => {
    const cp = await startControlPlane(procs, { args: ['--consul', consul.url] });
    const extraArgs = ['--consul', consul.url];
    const sa = await startMeshSidecar(procs, cp, { service: 'catalog', version: 'v1', appPort: (await app('a')).port, extraArgs });
    const sb = await startMeshSidecar(procs, cp, { service: 'catalog', version: 'v2', appPort: (await app('b')).port, extraArgs });
    const caller = await startMeshSidecar(procs, cp, { service: 'web', appPort: (await app('web')).port, extraArgs });
    // A caller without --consul routes by the pushed endpoints, so it also sees instances the catalog lists critical.
    const plain = await startMeshSidecar(procs, cp, { service: 'front', appPort: (await app('front')).port, listed: false });
    const both = [sa.inboundPort, sb.inboundPort].sort().join();
    for (const sc of [caller, plain]) await waitUntil(async () => (await clusterPorts(sc, 'catalog')).join() === both, { timeoutMs: 15_000, what: 'the callers to see both instances' });
    const [load, plainLoad] = [startLoad(http, caller.outboundUrl, 'catalog', 1, 20), startLoad(http, plain.outboundUrl, 'catalog', 1, 20)];
    loads.push(load, plainLoad);
    await waitUntil(() => load.answers.length > 20 && plainLoad.answers.length > 20, { what: 'traffic' });
    await consul.kill();
    const mark = load.answers.length;
    // Down for long enough that every watcher's backoff grows past a second.
    await waitUntil(() => load.answers.length > mark + 100, { timeoutMs: 15_000, what: 'answers while Consul is down' });
    await waitUntil(() => /watching (catalog|the service list) in Consul failed/.test(cp.child.output()), { what: 'the control plane to see the outage' });
    await consul.restart();
    await waitUntil(async () => (await passingPorts('catalog')).join() === both, { timeoutMs: 30_000, what: 'registrations restored' });
    await waitUntil(async () => (await consul.passing('web')).length === 1, { timeoutMs: 30_000, what: 'the caller registered again' });
    // The control plane pushes the catalog as Consul lists it again, with both instances.
    await waitUntil(async () => (await cp.api.get<{ services: Record<string, { endpoints: unknown[] }> }>('/api/v1/snapshot')).body.services.catalog?.endpoints.length === 2, { timeoutMs: 15_000, what: 'both catalog endpoints in the snapshot' });
    const after = load.answers.length;
    await waitUntil(() => load.answers.length > after + 50, { timeoutMs: 15_000, what: 'answers after the restart' });
    for (const l of [load, plainLoad]) await l.stop();
    expect(load.failures()).toEqual([]);
    expect(plainLoad.failures()).toEqual([]);
  });

  it('a sidecar started while Consul is down says so clearly, keeps serving and registers once Consul is back', async () => {
    await consul.kill();
    const a = await app('a');
    const sc = await sidecar('catalog', a.port, consulConfig([]), 'v1', '/live');
    await waitUntil(() => /cannot register catalog \(catalog-v1-[0-9a-f]+\) with Consul: cannot reach Consul at http:\/\/127\.0\.0\.1:\d+: connection refused/.test(sc.output()), { what: 'a clear error' });
    expect((await fetch(`${sc.adminUrl}/ready`)).status).toBe(200);
    await consul.restart();
    await waitUntil(async () => (await passingPorts('catalog')).join() === String(sc.inboundPort), { timeoutMs: 20_000, what: 'registered after Consul came back' });
  });
});

async function clusterPorts(sc: Pick<SpawnedSidecar, 'adminUrl'>, service: string): Promise<number[]> {
  const res = await fetch(`${sc.adminUrl}/clusters`);
  const clusters = (await res.json()) as Record<string, { endpoints: { port: number }[] }>;
  return (clusters[service]?.endpoints ?? []).map((e) => e.port).sort();
}
