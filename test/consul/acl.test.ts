/**
 * Consul with ACLs on (default deny): the sidecar sends CONSUL_HTTP_TOKEN; a wrong token is a
 * clear error at start and the sidecar keeps serving and retrying; a good token registers and
 * watches; a control plane on Consul KV fails at start on a wrong token and works with the
 * right one. Also a control plane pointed at no agent at all.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { AdminClient } from '../../cli/admin-client.js';
import { ADMIN_TOKEN } from '../control-plane/harness.js';
import { apiError, freePort, freePorts, Processes, tempDir, waitUntil } from '../support/index.js';
import { startConsul, type ConsulAgent } from '../support/consul.js';
import { consulConfig, consulTeardown, switchableApp, type SwitchableApp } from './fixture.js';

const ROOT = '5f0b7d2e-6a1c-4e0a-9a57-0c1e2f3a4b5c';

describe('Consul ACL token and bad addresses', { timeout: 60_000 }, () => {
  let consul: ConsulAgent;
  const procs = new Processes();
  const apps: SwitchableApp[] = [];

  beforeAll(async () => {
    consul = await startConsul({
      hcl: `acl { enabled = true\n default_policy = "deny"\n tokens { initial_management = "${ROOT}"\n agent = "${ROOT}" } }`,
      token: ROOT,
    });
  }, 60_000);
  consulTeardown(procs, apps, () => consul);

  const sidecar = async (token: string, waitFor: '/ready' | '/live', env: Record<string, string> = { CONSUL_HTTP_TOKEN: token }) => {
    const app = await switchableApp('a');
    apps.push(app);
    return procs.sidecar({ service: 'catalog', appPort: app.port, config: consulConfig(['orders']), waitFor, extraArgs: ['--consul', consul.url], env });
  };

  it('a wrong token is a clear error; the sidecar keeps serving and retrying', async () => {
    const sc = await sidecar('00000000-0000-0000-0000-000000000000', '/live');
    await waitUntil(() => /cannot register catalog .* with Consul: Consul at http:\/\/127\.0\.0\.1:\d+ refused the ACL token \(403/.test(sc.output()), { what: 'a clear registration error' });
    await waitUntil(() => /watching orders in Consul failed: Consul at .* refused the ACL token \(403/.test(sc.output()), { what: 'a clear watch error' });
    expect((await fetch(`${sc.adminUrl}/ready`)).status).toBe(200);
    expect(sc.hasExited).toBe(false);
    expect(await consul.passing('catalog')).toEqual([]);
  });

  it('no token at all is named as such, not as a refused token', async () => {
    const sc = await sidecar('', '/live', {});
    await waitUntil(() => /cannot register catalog .* with Consul: Consul at http:\/\/127\.0\.0\.1:\d+ refused a request sent without an ACL token \(403.*set CONSUL_HTTP_TOKEN or CONSUL_HTTP_TOKEN_FILE/.test(sc.output()), { what: `the missing token named:\n${sc.output()}` });
    expect(sc.output()).not.toMatch(/refused the ACL token/);
  });

  it('the right token registers and watches', async () => {
    const sc = await sidecar(ROOT, '/ready');
    await waitUntil(async () => (await consul.passing('catalog')).length === 1, { timeoutMs: 15_000, what: 'registered with the token' });
    expect(sc.output()).not.toMatch(/refused the ACL token/);
    expect(sc.output()).not.toMatch(/Filtered-By-ACLs/);
  });

  it('the token in CONSUL_HTTP_TOKEN_FILE (as consul-k8s mounts it) registers and watches, and wins over CONSUL_HTTP_TOKEN as in Consul\'s CLI', async () => {
    const file = join(tempDir(), 'consul-token');
    writeFileSync(file, `${ROOT}\n`);
    const sc = await sidecar(ROOT, '/ready', { CONSUL_HTTP_TOKEN_FILE: file, CONSUL_HTTP_TOKEN: '00000000-0000-0000-0000-000000000000' });
    await waitUntil(async () => (await consul.passing('catalog')).length === 1, { timeoutMs: 15_000, what: 'registered with the token from the file' });
    expect(sc.output()).not.toMatch(/refused the ACL token/);
  });

  it('a token Consul hides instances from (no node:read) is named in a warning instead of a silent empty endpoint set', async () => {
    const limited = '11111111-2222-3333-4444-555555555555';
    await consul.put('/acl/policy', { Name: 'no-node-read', Rules: 'service "catalog" { policy = "write" }\nservice_prefix "" { policy = "read" }' });
    await consul.put('/acl/token', { SecretID: limited, Policies: [{ Name: 'no-node-read' }] });
    await consul.put('/agent/service/register', { ID: 'orders-1', Name: 'orders', Address: '127.0.0.1', Port: 18443 });
    const sc = await sidecar(limited, '/live');
    const warning = /Consul at http:\/\/127\.0\.0\.1:\d+ leaves instances of orders out of its answers because the ACL token may not read them \(X-Consul-Results-Filtered-By-ACLs\).*node:read/;
    await waitUntil(() => warning.test(sc.output()), { timeoutMs: 15_000, what: 'the warning naming the filtered answers' });
    expect(sc.output().split('\n').filter((l) => warning.test(l))).toHaveLength(1);
  });

  const controlPlane = async (token: string) => {
    const [http, grpc] = (await freePorts(2)) as [number, number];
    const args = ['control-plane', '--data-dir', tempDir(), '--http-port', String(http), '--grpc-port', String(grpc), '--grpc-host', '127.0.0.1', '--consul', consul.url, '--store', 'consul'];
    const child = procs.skein('control-plane', args, { CONSUL_HTTP_TOKEN: token, SKEIN_ADMIN_TOKEN: ADMIN_TOKEN });
    return { child, api: new AdminClient(`http://127.0.0.1:${http}`, ADMIN_TOKEN) };
  };

  it('a control plane on Consul with a wrong token fails at start naming the refused token', async () => {
    const { child } = await controlPlane('00000000-0000-0000-0000-000000000000');
    const exit = await child.exited;
    expect(exit.code).not.toBe(0);
    await waitUntil(() => /--store consul: Consul at http:\/\/127\.0\.0\.1:\d+ refused the ACL token \(403/.test(child.output()), { timeoutMs: 5_000, what: `the refused token in the log:\n${child.output()}` });
  });

  it('a control plane on Consul with the right token stores config in KV and lists the catalog', async () => {
    const { child, api } = await controlPlane(ROOT);
    await consul.put('/agent/service/register', { ID: 'orders-1', Name: 'orders', Address: '127.0.0.1', Port: 18443, Tags: ['v1'], Meta: { version: 'v1', protocol: 'http' } });
    await waitUntil(async () => {
      if (child.hasExited) throw new Error(`control plane exited:\n${child.output()}`);
      const services = await api.get<{ name: string; instances: { port: number }[] }[]>('/api/v1/services').catch(() => undefined);
      return services?.body.find((s) => s.name === 'orders')?.instances.some((i) => i.port === 18443) ?? false;
    }, { timeoutMs: 20_000, what: 'orders from the catalog in GET /api/v1/services' });
    expect((await api.put('/api/v1/services/orders/policy', { timeout: '2s' })).status).toBe(200);
    expect(await consul.get<string[]>('/kv/skein/?keys')).toContain('skein/policies/orders');
  });

  it('a control plane whose token may not create sessions names that to a rollout it cannot drive, instead of a bare "try again"', async () => {
    const limited = '22222222-3333-4444-5555-666666666666';
    await consul.put('/acl/policy', { Name: 'no-session', Rules: 'key_prefix "skein/" { policy = "write" }\nservice_prefix "" { policy = "read" }\nnode_prefix "" { policy = "read" }' });
    await consul.put('/acl/token', { SecretID: limited, Policies: [{ Name: 'no-session' }] });
    const { child, api } = await controlPlane(limited);
    await waitUntil(async () => {
      if (child.hasExited) throw new Error(`control plane exited:\n${child.output()}`);
      return (await api.get('/api/v1/services').catch(() => undefined)) !== undefined;
    }, { timeoutMs: 20_000, what: 'the control plane to answer' });
    const refused = await apiError(api.post('/api/v1/canaries/orders', { to: 'v2' }));
    expect(refused.status).toBe(503);
    expect(refused.message).toMatch(/their lease, Consul KV at skein\/leases\/canary-driver, cannot be taken by this replica: Consul at http:\/\/127\.0\.0\.1:\d+ refused the ACL token \(403/);
    expect(child.output()).toMatch(/the canary driver lease \(Consul KV at skein\/leases\/canary-driver\) could not be taken or watched: .*\(403/);
  });

  it('a control plane with --store consul and no agent at the address fails at start with a clear error', async () => {
    const port = await freePort();
    const child = procs.skein('control-plane', ['control-plane', '--data-dir', tempDir(), '--http-port', '0', '--grpc-port', '0', '--consul', `http://127.0.0.1:${port}`, '--store', 'consul']);
    const exit = await child.exited;
    expect(exit.code).not.toBe(0);
    expect(child.output()).toMatch(/--store consul: cannot reach Consul at http:\/\/127\.0\.0\.1:\d+: connection refused/);
  });
});
