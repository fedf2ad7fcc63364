/**
 * The control plane's catalog on an agent that lets one address hold fewer connections
 * (`limits { http_max_conns_per_client }`) than the catalog has services: it watches with a
 * bounded number of them (two blocking queries and a few reads at a time), so it still reads
 * every service, pushes their endpoints, and follows a check that fails, an instance that
 * moves (a re-registration, which changes no check) and a deregistration. A registration or
 * deregistration has only that service read, not every one (reads counted through a
 * recording proxy); a re-registration the lists cannot show, in one answer with one they do,
 * is read by the sweep within `--consul-sweep`.
 */
import { isDeepStrictEqual } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startControlPlane } from '../control-plane/harness.js';
import { Processes, waitUntil } from '../support/index.js';
import { startConsul, type ConsulAgent } from '../support/consul.js';
import { healthQueried, recordingAgentProxy } from './fixture.js';

/** `--consul-sweep` of the re-registration test: 7 services, one read every 0.43 s. */
const SWEEP_S = 3;

describe('control plane catalog on an agent with a small connection limit', { timeout: 90_000 }, () => {
  let consul: ConsulAgent;
  const procs = new Processes();

  beforeAll(async () => {
    // 8: the control plane's 6 and this test's own requests to the agent.
    consul = await startConsul({ hcl: 'limits { http_max_conns_per_client = 8 }' });
  }, 60_000);
  afterAll(async () => {
    await procs.killAll();
    await consul?.stop();
  });

  it('more services than the limit are all read and pushed, and later changes to them followed', async () => {
    const names = Array.from({ length: 24 }, (_, i) => `svc${i}`);
    for (const [i, name] of names.entries()) {
      await consul.put('/agent/service/register', { ID: `${name}-1`, Name: name, Address: '127.0.0.1', Port: 7000 + i, Check: { CheckID: `${name}-ttl`, TTL: '10m', Status: 'passing' } });
    }
    const cp = await startControlPlane(procs, { args: ['--consul', consul.url] });
    const ports = async (): Promise<Record<string, number[]>> => {
      const services = (await cp.api.get<{ services: Record<string, { endpoints?: { port: number }[] }> }>('/api/v1/snapshot')).body.services;
      return Object.fromEntries(Object.entries(services).map(([name, s]) => [name, (s.endpoints ?? []).map((e) => e.port)]));
    };
    const expected: Record<string, number[]> = Object.fromEntries(names.map((name, i) => [name, [7000 + i]]));
    const pushed = async (): Promise<boolean> => isDeepStrictEqual(await ports(), expected);
    await waitUntil(pushed, { timeoutMs: 20_000, what: "every service's endpoint in the snapshot" });

    // A check that fails: the instance leaves the endpoints, its service stays.
    await consul.put('/agent/check/fail/svc3-ttl');
    expected.svc3 = [];
    await waitUntil(pushed, { timeoutMs: 10_000, what: 'svc3 without endpoints once its check fails' });
    // A re-registration on another port: no check changes, the services list's index moves.
    await consul.put('/agent/service/register', { ID: 'svc5-1', Name: 'svc5', Address: '127.0.0.1', Port: 7105, Check: { CheckID: 'svc5-ttl', TTL: '10m', Status: 'passing' } });
    expected.svc5 = [7105];
    await waitUntil(pushed, { timeoutMs: 10_000, what: 'svc5 on its new port' });
    await consul.put('/agent/service/deregister/svc7-1');
    delete expected.svc7;
    await waitUntil(pushed, { timeoutMs: 10_000, what: 'svc7 gone once deregistered' });

    expect(cp.child.output()).not.toContain('refuses more connections');
  });

  it('a service registered among 20, or deregistered, has only itself read, not every service', async () => {
    await procs.killAll();
    await consul.reset();
    const register = (i: number) => consul.put('/agent/service/register', { ID: `svc${i}-1`, Name: `svc${i}`, Address: '127.0.0.1', Port: 7000 + i, Check: { CheckID: `svc${i}-ttl`, TTL: '10m', Status: 'passing' } });
    for (let i = 0; i < 20; i++) await register(i);
    const proxy = await recordingAgentProxy(consul);
    try {
      // The sweep's reads, one every 3 minutes here, are not counted.
      const cp = await startControlPlane(procs, { args: ['--consul', proxy.url, '--consul-sweep', '1h'] });
      const services = async () => (await cp.api.get<{ services: Record<string, { endpoints?: { port: number }[] }> }>('/api/v1/snapshot')).body.services;
      await waitUntil(async () => Object.keys(await services()).length === 20, { timeoutMs: 20_000, what: 'the 20 services in the snapshot' });
      expect(healthQueried(proxy.requests)).toHaveLength(20);

      let mark = proxy.requests.length;
      await register(20);
      await waitUntil(async () => (await services()).svc20?.endpoints?.[0]?.port === 7020, { timeoutMs: 10_000, what: 'svc20 in the snapshot' });
      expect(healthQueried(proxy.requests.slice(mark))).toEqual(['svc20']);

      mark = proxy.requests.length;
      await consul.put('/agent/service/deregister/svc3-1');
      await waitUntil(async () => (await services()).svc3 === undefined, { timeoutMs: 10_000, what: 'svc3 gone from the snapshot' });
      // Its checks went with it, which may have it read once more before the list drops it.
      expect(healthQueried(proxy.requests.slice(mark)).filter((name) => name !== 'svc3')).toEqual([]);
    } finally {
      await procs.killAll();
      await proxy.close();
    }
  });

  it('a re-registration on a new port in one answer with another registration reaches the snapshot within --consul-sweep', async () => {
    await procs.killAll();
    await consul.reset();
    const register = (name: string, port: number) =>
      consul.put('/agent/service/register', { ID: `${name}-1`, Name: name, Address: '127.0.0.1', Port: port, Check: { CheckID: `${name}-ttl`, TTL: '10m', Status: 'passing' } });
    for (let i = 0; i < 4; i++) await register(`svc${i}`, 7000 + i);
    await register('mover', 7100);
    const proxy = await recordingAgentProxy(consul);
    try {
      const cp = await startControlPlane(procs, { args: ['--consul', proxy.url, '--consul-sweep', `${SWEEP_S}s`] });
      const services = async () => (await cp.api.get<{ services: Record<string, { endpoints?: { port: number }[] }> }>('/api/v1/snapshot')).body.services;
      const portOf = async (name: string) => (await services())[name]?.endpoints?.[0]?.port;
      await waitUntil(async () => (await portOf('mover')) === 7100, { timeoutMs: 20_000, what: 'mover on 7100 in the snapshot' });

      // Hold the control plane's next blocking read of the services list, then make both writes:
      // it reaches the agent after them, and its answer shows the newcomer, not mover's move.
      const gate = proxy.hold((url) => url.startsWith('/v1/catalog/services?') && url.includes('index='));
      await register('trigger', 7200);
      await waitUntil(() => gate.held() === 1, { timeoutMs: 10_000, what: "the control plane's next read of the services list held" });
      await register('mover', 7101);
      await register('newcomer', 7300);
      const inCatalog = async (name: string, port: number) => (await consul.get<{ ServicePort: number }[]>(`/catalog/service/${name}`))?.[0]?.ServicePort === port;
      await waitUntil(async () => (await inCatalog('mover', 7101)) && (await inCatalog('newcomer', 7300)), { what: "both writes in the agent's catalog" });
      const released = Date.now();
      gate.release();

      await waitUntil(async () => (await portOf('newcomer')) === 7300, { timeoutMs: 10_000, what: 'newcomer in the snapshot' });
      // The sweep has mover read within its period (plus a read and a push); on the old code it stayed on 7100.
      await waitUntil(async () => (await portOf('mover')) === 7101, { timeoutMs: SWEEP_S * 1_000 + 3_000, what: 'mover on its new port within the sweep' });
      expect(Date.now() - released).toBeLessThan(SWEEP_S * 1_000 + 3_000);
    } finally {
      await procs.killAll();
      await proxy.close();
    }
  });
});
