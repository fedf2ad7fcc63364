/**
 * Identity in control-plane mode, with real processes: sidecars bootstrap their certificate
 * from the control plane's CA with a token, call each other over mTLS, report expiry, and
 * obey intentions changed through the CLI within a second. Bad tokens and foreign
 * identities stop a sidecar at start with the CA's reason.
 */
import { createHash } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createToken, startControlPlane, type ControlPlaneProcess } from '../control-plane/harness.js';
import { Processes, echoHandler, makeCa, startUpstream, tempDir, waitUntil, type TestUpstream } from '../support/index.js';
import { metric, scrape } from '../sidecar/resilience-fixture.js';
import { get, metricValue, skeinCli, startMeshSidecar, type MeshSidecar } from './mesh.js';

const procs = new Processes();
const apps: TestUpstream[] = [];
let cp: ControlPlaneProcess;
let gateway: MeshSidecar;
let users: MeshSidecar;
let orders: MeshSidecar;

async function app(name: string): Promise<number> {
  const u = await startUpstream(echoHandler(name));
  apps.push(u);
  return u.port;
}

/** Lines of the control plane's log that refuse a CSR for `outcome`. */
const refusalsLogged = (outcome: string) =>
  cp.child.output().split('\n').filter((l) => l.includes('refused CSR') && l.includes(`"reason":"${outcome}"`)).length;
const signing = async () => (await cp.api.get<{ signing: Record<string, number> }>('/api/v1/ca')).body.signing;
/** The same counts as the control plane's Prometheus series. */
const csrMetric = async (outcome: string) => metric(await scrape(cp), 'skein_ca_csr_total', { outcome });

/**
 * Starts a sidecar that the CA must refuse: it exits with `message`, the CA counts one more
 * refusal of kind `outcome` (in GET /api/v1/ca and skein_ca_csr_total) and logs it, and
 * traffic between the other sidecars goes on.
 */
async function expectRefusedStart(service: string, token: string, message: RegExp, outcome: string): Promise<void> {
  const before = (await signing())[outcome] ?? 0;
  const [metricBefore, issuedBefore] = [await csrMetric(outcome), await csrMetric('issued')];
  expect(metricBefore).toBe(before);
  const logged = refusalsLogged(outcome);
  const refused = await startMeshSidecar(procs, cp, { service, appPort: await app(`refused-${service}`), token, waitFor: 'none' });
  const exit = await refused.child.exited;
  expect(exit.code).not.toBe(0);
  expect(refused.child.output()).toMatch(message);
  expect((await signing())[outcome]).toBe(before + 1);
  expect(await csrMetric(outcome)).toBe(metricBefore + 1);
  expect(await csrMetric('issued')).toBe(issuedBefore);
  await waitUntil(() => refusalsLogged(outcome) === logged + 1, { what: 'the refusal in the control plane log', timeoutMs: 3_000 });
  expect((await get(gateway, 'orders')).status).toBe(200);
}

beforeAll(async () => {
  cp = await startControlPlane(procs);
  [gateway, users, orders] = await Promise.all([
    startMeshSidecar(procs, cp, { service: 'gateway', appPort: await app('gateway') }),
    startMeshSidecar(procs, cp, { service: 'users', appPort: await app('users') }),
    startMeshSidecar(procs, cp, { service: 'orders', appPort: await app('orders') }),
  ]);
  // Discovery through the built-in registry: wait until the gateway knows an orders endpoint.
  await waitUntil(async () => (await get(gateway, 'orders')).status === 200, { what: 'gateway to reach orders', timeoutMs: 15_000 });
}, 90_000);

afterAll(async () => {
  await procs.killAll();
  await Promise.all(apps.map((a) => a.close()));
});

describe('certificates issued by the control plane', () => {
  it('lets sidecars call each other over mTLS with issued identities', async () => {
    const r = await get(gateway, 'orders');
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body).name).toBe('orders');
    expect(orders.child.output()).toContain('"spiffeId":"spiffe://skein.local/service/orders"');
  });

  it('reports certificate expiry in GET /api/v1/proxies and skein_cert_expiry_timestamp_seconds', async () => {
    const expiry = await metricValue(orders, /^skein_cert_expiry_timestamp_seconds /);
    const inADay = Date.now() / 1000 + 24 * 3600;
    expect(expiry).toBeGreaterThan(inADay - 120);
    expect(expiry).toBeLessThan(inADay + 120);
    const view = await waitUntil(async () => {
      const body = (await cp.api.get<{ proxies: { service: string; certExpiry: string | null }[] }>('/api/v1/proxies')).body;
      const p = body.proxies.find((x) => x.service === 'orders');
      return p?.certExpiry ? p : undefined;
    }, { what: 'orders cert expiry in /api/v1/proxies' });
    expect(Math.abs(Date.parse(view.certExpiry!) / 1000 - expiry!)).toBeLessThanOrEqual(1);
  });

  it('keeps the root key mode 0600 and stores bootstrap tokens only as their hashes', async () => {
    expect((await stat(join(cp.dataDir, 'ca.key'))).mode & 0o777).toBe(0o600);
    const token = await createToken(cp, 'payments');
    const store = await readFile(join(cp.dataDir, 'store.json'), 'utf8');
    expect(store).not.toContain(token);
    expect(store).toContain(`tokens/${createHash('sha256').update(token).digest('hex')}`);
  });

  it('bootstraps a sidecar given its CA file as SKEIN_CA_FILE', async () => {
    const catalog = await startMeshSidecar(procs, cp, { service: 'catalog', appPort: await app('catalog'), caFileFromEnv: true });
    expect(catalog.child.output()).toContain('"spiffeId":"spiffe://skein.local/service/catalog"');
    await waitUntil(async () => (await get(gateway, 'catalog')).status === 200, { what: 'gateway to reach catalog', timeoutMs: 15_000 });
  });

  it('does not trust a control plane its CA file does not verify: no certificate, not ready, the reason in the log', async () => {
    const wrongCaFile = join(tempDir('skein-wrong-ca-'), 'ca.crt');
    await writeFile(wrongCaFile, makeCa('Not the control plane').certPem);
    const before = await signing();
    const lost = await startMeshSidecar(procs, cp, { service: 'payments', appPort: await app('lost-payments'), caFile: wrongCaFile, waitFor: 'none' });
    await waitUntil(() => /certificate request failed/.test(lost.child.output()), { what: 'the failed certificate request in the log', timeoutMs: 15_000 });
    expect(lost.child.output()).toMatch(/could not be reached: .*self-signed certificate in certificate chain.*does --ca-file hold the control plane's ca\.crt\?/);
    // It keeps trying (a control plane may be restarting) but is never ready and was never served.
    expect(lost.child.hasExited).toBe(false);
    expect(await fetch(`${lost.adminUrl}/ready`).then((r) => r.status, () => 'admin port not open')).not.toBe(200);
    expect(await signing()).toEqual(before);
    lost.child.kill();
  });

  it('refuses a sidecar with a wrong token: it exits with the reason, and the mesh carries on', async () => {
    await expectRefusedStart('payments', 'skt_not-a-real-token', /no certificate for service payments: .*bootstrap token is unknown/, 'unauthenticated');
  });

  it('refuses a revoked token', async () => {
    const token = await createToken(cp, 'payments');
    const revoke = await skeinCli(procs, cp, ['token', 'revoke', token]);
    expect(revoke.code, revoke.output).toBe(0);
    await expectRefusedStart('payments', token, /no certificate for service payments: .*bootstrap token is revoked/, 'unauthenticated');
  });

  it('refuses an expired token', async () => {
    const issued = (await cp.api.post<{ token: string; expiresAt: string }>('/api/v1/tokens', { service: 'payments', ttl: '1s' })).body;
    await waitUntil(() => Date.now() > Date.parse(issued.expiresAt), { what: 'the token to expire', timeoutMs: 3_000 });
    await expectRefusedStart('payments', issued.token, /no certificate for service payments: .*bootstrap token is expired/, 'unauthenticated');
  });

  it("refuses a CSR for another identity than the token's service", async () => {
    const paymentsToken = await createToken(cp, 'payments');
    await expectRefusedStart('orders', paymentsToken, /CSR asks for service "orders" but the caller is authorised for "payments" only/, 'identity-mismatch');
  });

  it('says so when asked to revoke a token it never issued', async () => {
    const revoke = await skeinCli(procs, cp, ['token', 'revoke', 'skt_never-issued']);
    expect(revoke.code).not.toBe(0);
    expect(revoke.output).toMatch(/no such bootstrap token/);
  });

  it('applies intentions from the CLI within a second, denying with 403 x-skein-reason: denied', async () => {
    expect((await skeinCli(procs, cp, ['intention', 'allow', 'gateway', 'orders'])).code).toBe(0);
    const set = await skeinCli(procs, cp, ['intention', 'default', 'deny']);
    expect(set.code, set.output).toBe(0);
    const applied = Date.now();
    const denied = await waitUntil(async () => {
      const r = await get(users, 'orders');
      return r.status === 403 ? r : undefined;
    }, { what: 'users → orders to be denied', timeoutMs: 1_000, intervalMs: 20 });
    expect(Date.now() - applied).toBeLessThan(1_000);
    expect(denied.reason).toBe('denied');
    expect((await get(gateway, 'orders')).status).toBe(200);
    expect(await metricValue(orders, /^skein_authz_denied_total\{source="users",destination="orders"\}/)).toBeGreaterThanOrEqual(1);

    expect((await skeinCli(procs, cp, ['intention', 'deny', 'gateway', 'orders'])).code).toBe(0);
    const revoked = Date.now();
    await waitUntil(async () => (await get(gateway, 'orders')).status === 403, { what: 'gateway → orders to be denied', timeoutMs: 1_000, intervalMs: 20 });
    expect(Date.now() - revoked).toBeLessThan(1_000);

    expect((await skeinCli(procs, cp, ['intention', 'allow', 'gateway', 'orders'])).code).toBe(0);
    const allowed = Date.now();
    await waitUntil(async () => (await get(gateway, 'orders')).status === 200, { what: 'gateway → orders to be allowed again', timeoutMs: 1_000, intervalMs: 20 });
    expect(Date.now() - allowed).toBeLessThan(1_000);
  });
});
