/**
 * `--store consul` against a real agent, where Consul's own answers matter: deletes (a
 * `delete-cas` transaction answers no result), values written by hand that are not JSON,
 * and an agent that hangs or is gone (bounded requests, answered 503 naming Consul).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { connectConsul } from '../../common/consul/client.js';
import { createLogger } from '../../common/log.js';
import { ConsulStore } from '../../control-plane/store/consul-store.js';
import type { AdminApiError } from '../../cli/admin-client.js';
import { startControlPlane } from '../control-plane/harness.js';
import { skeinCli } from '../identity/mesh.js';
import { freePorts, Processes, tempDir, waitUntil } from '../support/index.js';
import { startConsul, type ConsulAgent } from '../support/consul.js';
import { consulTeardown } from './fixture.js';

describe('control plane on the Consul KV store', { timeout: 90_000 }, () => {
  let consul: ConsulAgent;
  const procs = new Processes();

  beforeAll(async () => {
    consul = await startConsul();
  }, 60_000);
  consulTeardown(procs, [], () => consul);

  const replica = () => startControlPlane(procs, { args: ['--consul', consul.url, '--store', 'consul'] });
  const putRaw = async (key: string, text: string) => expect((await fetch(`${consul.url}/v1/kv/skein/${key}`, { method: 'PUT', body: text })).ok).toBe(true);

  it('DELETE of routes and of a policy answers 204 and removes the key; the store says whether it existed', async () => {
    const cp = await replica();
    await cp.api.put('/api/v1/services/catalog/policy', { subsets: { v1: { version: 'v1' } } });
    await cp.api.put('/api/v1/routes/catalog/split', { v1: 100 });
    expect((await cp.api.delete('/api/v1/routes/catalog')).status).toBe(204);
    expect(await consul.get('/kv/skein/routes/catalog')).toBeUndefined();
    expect((await cp.api.delete('/api/v1/services/catalog/policy')).status).toBe(204);
    expect(await consul.get('/kv/skein/policies/catalog')).toBeUndefined();
    expect(await cp.api.delete('/api/v1/routes/catalog').catch((err: AdminApiError) => err.status)).toBe(404);
    expect(cp.child.output()).not.toContain('internal error');

    const connection = connectConsul(consul.url);
    const store = await ConsulStore.open(connection, createLogger('test', 'silent'));
    try {
      const written = await store.put('intentions', { defaultAction: 'deny' });
      expect(await store.delete('intentions', { ifRevision: written.revision })).toBe(true);
      expect(await store.delete('intentions')).toBe(false);
    } finally {
      await store.close();
      connection.close();
    }
  });

  it('a value that is not JSON is named with its key: the start is refused naming the store, at run time the warning names it', async () => {
    const cp = await replica();
    await putRaw('policies/orders', 'timeout=5s');
    await waitUntil(() => cp.child.output().includes('composing a snapshot failed'), { timeoutMs: 10_000, what: 'the control plane to meet the key' });
    const put = await cp.api.put('/api/v1/services/catalog/policy', { timeout: '3s' });
    expect(put.headers.get('skein-published')).toBe('false');
    expect(put.headers.get('warning')).toMatch(/policies\/orders: not JSON \(Unexpected token/);
    // What is stored is shown as it is.
    expect((await cp.api.get('/api/v1/services/orders/policy')).body).toBe('timeout=5s');

    const [httpPort, grpcPort] = await freePorts(2);
    const refused = procs.skein('refused', [
      'control-plane', '--data-dir', tempDir('skein-cp-'), '--http-port', String(httpPort), '--grpc-port', String(grpcPort), '--grpc-host', '127.0.0.1',
      '--consul', consul.url, '--store', 'consul',
    ]);
    expect((await refused.exited).code).toBe(1);
    expect(refused.output()).toMatch(/skein: invalid config in the store \(Consul KV under skein\/\), refusing to start: policies\/orders: not JSON \(Unexpected token/);
  });

  it('GET /api/v1/services and /api/v1/routes answer 200 with a bad entry in the store, naming it per service and in a Warning', async () => {
    const cp = await replica();
    await cp.api.put('/api/v1/services/catalog/policy', { subsets: { v1: { version: 'v1' } } });
    await cp.api.put('/api/v1/routes/catalog', [{ split: { v1: 100 } }]);
    await putRaw('policies/orders', 'timeout=5s');
    await putRaw('routes/web', JSON.stringify([{ split: { v1: 60 } }]));
    await waitUntil(() => cp.child.output().includes('composing a snapshot failed'), { timeoutMs: 10_000, what: 'the control plane to meet the keys' });

    type View = { name: string; hasPolicy: boolean; subsets: { name: string }[]; problems?: string[] };
    const listed = await cp.api.get<View[]>('/api/v1/services');
    expect(listed.status).toBe(200);
    const byName = new Map(listed.body.map((v) => [v.name, v]));
    expect([...byName.keys()]).toEqual(['catalog', 'orders', 'web']);
    // The good entries as stored; each bad one named on its service, which is listed without it.
    expect(byName.get('catalog')!.subsets.map((s) => s.name)).toEqual(['v1']);
    expect(byName.get('catalog')!.problems).toBeUndefined();
    expect(byName.get('orders')!.hasPolicy).toBe(false);
    expect(byName.get('orders')!.problems).toEqual([expect.stringMatching(/^policies\/orders: not JSON \(Unexpected token/)]);
    expect(byName.get('web')!.problems).toEqual(['routes/web: [0].split: weights must sum to 100']);
    const warning = /^299 - "invalid config in the store \(Consul KV under skein\/\), not published: (.*)"$/.exec(listed.headers.get('warning') ?? '');
    expect(warning?.[1]).toMatch(/^policies\/orders: not JSON \(Unexpected token.*; routes\/web: \[0\]\.split: weights must sum to 100; fix or delete/);
    expect((await cp.api.get<View>('/api/v1/services/orders')).body.problems).toEqual(byName.get('orders')!.problems);

    const routes = await cp.api.get<Record<string, unknown>>('/api/v1/routes');
    expect(routes.body).toEqual({ catalog: [{ split: { v1: 100 } }] });
    expect(routes.headers.get('warning')).toMatch(/routes\/web: \[0\]\.split: weights must sum to 100/);
    expect(cp.child.output()).not.toContain('internal error');
    // The CLI lists the good entries and says on stderr which stored ones it left out.
    const cli = await skeinCli(procs, cp, ['get', 'services']);
    expect(cli.code).toBe(0);
    expect(cli.output).toMatch(/^catalog\s+http/m);
    expect(cli.output).toMatch(/^skein: warning: invalid config in the store .*routes\/web: \[0\]\.split: weights must sum to 100/m);

    // Fixed, the listing has nothing more to say.
    expect((await fetch(`${consul.url}/v1/kv/skein/policies/orders`, { method: 'DELETE' })).ok).toBe(true);
    expect((await fetch(`${consul.url}/v1/kv/skein/routes/web`, { method: 'DELETE' })).ok).toBe(true);
    await waitUntil(async () => (await cp.api.get('/api/v1/services')).headers.get('warning') === null, { timeoutMs: 10_000, what: 'the listing without a warning' });
    expect((await cp.api.get<View[]>('/api/v1/services')).body.every((v) => v.problems === undefined)).toBe(true);
  });

  it('a hung agent: admin reads and writes answer 503 within seconds naming Consul, a write it may have made says so; a refused connection says nothing was written', async () => {
    const cp = await replica();
    await cp.api.put('/api/v1/services/catalog/policy', { timeout: '2s' });
    const connection = connectConsul(consul.url);
    const store = await ConsulStore.open(connection, createLogger('test', 'silent'));
    consul.pause();
    try {
      const started = Date.now();
      const write = (await cp.api.put('/api/v1/services/catalog/policy', { timeout: '3s' }).catch((err: unknown) => err)) as AdminApiError;
      expect(Date.now() - started).toBeLessThan(15_000);
      expect(write.status).toBe(503);
      expect(write.code).toBe('unavailable');
      expect(write.message).toMatch(/^the config store is unavailable: Consul at http:\/\/127\.0\.0\.1:\d+ did not answer within 5 s/);
      const read = (await cp.api.get('/api/v1/routes/catalog').catch((err: unknown) => err)) as AdminApiError;
      expect(read.status).toBe(503);
      expect(read.message).toMatch(/did not answer within 5 s$/);
      // A transaction sent and not answered may still be committed once the agent resumes.
      await expect(store.transaction([{ op: 'put', key: 'intentions', value: { defaultAction: 'deny' } }])).rejects.toThrow(
        /did not answer within 5 s; the write may or may not have been made: read the current value before retrying$/,
      );
      consul.resume();
      await consul.kill();
      const refused = (await cp.api.put('/api/v1/services/catalog/policy', { timeout: '4s' }).catch((err: unknown) => err)) as AdminApiError;
      expect(refused.status).toBe(503);
      expect(refused.message).toMatch(/^the config store is unavailable: cannot reach Consul at .*: connection refused \(is the agent running/);
      await expect(store.transaction([{ op: 'put', key: 'intentions', value: { defaultAction: 'deny' } }])).rejects.toThrow(/connection refused .*; nothing was written$/);
      // Liveness is the process's, not the store's: restarting would not bring Consul back.
      expect((await fetch(`${cp.adminUrl}/healthz`)).status).toBe(200);
    } finally {
      consul.resume();
      await store.close();
      connection.close();
    }
  });
});
