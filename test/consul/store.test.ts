/**
 * `--store consul` against a real agent, where Consul's own answers matter: deletes (a
 * `delete-cas` transaction answers no result).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { connectConsul } from '../../common/consul/client.js';
import { createLogger } from '../../common/log.js';
import { ConsulStore } from '../../control-plane/store/consul-store.js';
import type { AdminApiError } from '../../cli/admin-client.js';
import { startControlPlane } from '../control-plane/harness.js';
import { Processes } from '../support/index.js';
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
});
