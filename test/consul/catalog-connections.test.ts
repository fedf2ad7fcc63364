/**
 * The control plane's catalog on an agent that lets one address hold fewer connections
 * (`limits { http_max_conns_per_client }`) than the catalog has services: it watches with a
 * bounded number of them (two blocking queries and a few reads at a time), so it still reads
 * every service, pushes their endpoints, and follows a check that fails, an instance that
 * moves (a re-registration, which changes no check) and a deregistration. A registration or
 * deregistration has only that service read, not every one (reads counted through a
 * recording proxy).
 */
import { isDeepStrictEqual } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startControlPlane } from '../control-plane/harness.js';
import { Processes, waitUntil } from '../support/index.js';
import { startConsul, type ConsulAgent } from '../support/consul.js';
import { healthQueried, recordingAgentProxy } from './fixture.js';

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
      const cp = await startControlPlane(procs, { args: ['--consul', proxy.url] });
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
});
