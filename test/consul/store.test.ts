/**
 * `--store consul` against a real agent, where Consul's own answers matter: deletes (a
 * `delete-cas` transaction answers no result) and values written by hand that are not JSON.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { connectConsul } from '../../common/consul/client.js';
import { createLogger } from '../../common/log.js';
import { ConsulStore } from '../../control-plane/store/consul-store.js';
import type { AdminApiError } from '../../cli/admin-client.js';
import { startControlPlane } from '../control-plane/harness.js';
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
});
