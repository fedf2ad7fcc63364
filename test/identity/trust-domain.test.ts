/**
 * Changing `--trust-domain` on a data dir whose sidecars hold identities of the old one, with
 * real processes. Started plainly with another trust domain, the control plane refuses to
 * start (before, it started and refused every renewal, which carries the old SPIFFE ID, so the
 * sidecars failed once their leaves expired). With `--trust-domain-alias OLD` it moves the
 * mesh: certificates of the old domain still prove their service, renewals are issued in the
 * new one, and sidecars of either domain take each other's identities while they move.
 */
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, createToken, startControlPlane, type ControlPlaneProcess } from '../control-plane/harness.js';
import { echoHandler, Processes, startUpstream, waitUntil, type TestUpstream } from '../support/index.js';
import { get, servedCertificate, skeinCli, startMeshSidecar, steadyLoad, type MeshSidecar } from './mesh.js';

const OLD = 'old.example';
const NEW = 'new.example';
/** Longer than the sidecars' reconnect backoff (5 s), so no caller is sent a snapshot its peer has not rejoined yet. */
const RESYNC_HOLD = ['--resync-hold', '10s'];

const procs = new Processes();
const apps: TestUpstream[] = [];
let cp: ControlPlaneProcess;
let gateway: MeshSidecar;
let orders: MeshSidecar;
const tokens: string[] = [];

async function sidecarFor(service: string): Promise<MeshSidecar> {
  const app = await startUpstream(echoHandler(service));
  apps.push(app);
  const token = await createToken(cp, service);
  tokens.push(token);
  return startMeshSidecar(procs, cp, { service, appPort: app.port, token });
}

/** How many sidecars the control plane has on a stream. */
const connected = async () => (await cp.api.get<{ proxies: unknown[] }>('/api/v1/proxies')).body.proxies.length;

/** Each connected sidecar's SPIFFE ID as `GET /api/v1/proxies` lists it, by service: who has moved. */
async function listedIds(): Promise<Record<string, string | null>> {
  const { proxies } = (await cp.api.get<{ proxies: { service: string; spiffeId: string | null }[] }>('/api/v1/proxies')).body;
  return Object.fromEntries(proxies.map((p) => [p.service, p.spiffeId]));
}

/** Whether the snapshot `sidecar` runs has `service`'s endpoints. */
async function knows(sidecar: MeshSidecar, service: string): Promise<boolean> {
  const config = (await (await fetch(`${sidecar.adminUrl}/config`)).json()) as { snapshot: { services?: Record<string, { endpoints?: unknown[] }> } };
  return (config.snapshot.services?.[service]?.endpoints?.length ?? 0) > 0;
}

/** The SPIFFE ID a sidecar serves on its inbound port. */
async function servedId(sidecar: MeshSidecar): Promise<string | undefined> {
  const cert = await servedCertificate(sidecar, await readFile(cp.caFile, 'utf8'));
  return /URI:(spiffe:\/\/[^,]+)/.exec(cert.subjectaltname ?? '')?.[1];
}

beforeAll(async () => {
  cp = await startControlPlane(procs, { args: ['--trust-domain', OLD] });
  [gateway, orders] = await Promise.all([sidecarFor('gateway'), sidecarFor('orders')]);
  await waitUntil(async () => (await get(gateway, 'orders')).status === 200, { what: 'gateway to reach orders', timeoutMs: 15_000 });
  cp.child.kill('SIGKILL');
  await cp.child.exited;
}, 90_000);

afterAll(async () => {
  await procs.killAll();
  await Promise.all(apps.map((a) => a.close()));
});

describe('a control plane restarted with another --trust-domain', () => {
  it('refuses to start on the old data dir, naming both trust domains and how to migrate; the mesh serves on', async () => {
    const child = procs.skein('control-plane (another trust domain)', [
      'control-plane', '--data-dir', cp.dataDir, '--http-port', '0', '--grpc-port', '0', '--grpc-host', '127.0.0.1', '--trust-domain', NEW,
    ], { SKEIN_ADMIN_TOKEN: ADMIN_TOKEN });
    const exit = await child.exited;
    expect(exit.code, child.output()).toBe(1);
    expect(child.output()).toContain(`issues identities in trust domain ${OLD}, not ${NEW} (--trust-domain)`);
    expect(child.output()).toContain(`--trust-domain ${NEW} --trust-domain-alias ${OLD}`);
    expect(await servedId(orders)).toBe(`spiffe://${OLD}/service/orders`);
    expect((await get(gateway, 'orders')).status).toBe(200);
  }, 30_000);

  it('with --trust-domain-alias moves every sidecar to the new trust domain, old and new identities taking each other meanwhile, losing no request', async () => {
    const load = steadyLoad(gateway, 'orders', 2);
    cp = await startControlPlane(procs, { dataDir: cp.dataDir, httpPort: cp.httpPort, grpcPort: cp.grpcPort, args: ['--trust-domain', NEW, '--trust-domain-alias', OLD, ...RESYNC_HOLD] });
    // Both reconnect with their old-domain certificates (the tokens could do it too: revoked below).
    await waitUntil(async () => (await connected()) === 2 || undefined, { what: 'both sidecars to reconnect', timeoutMs: 20_000 });

    // A sidecar bootstrapped now is of the new trust domain; the old ones call it and it calls them.
    const status = await skeinCli(procs, cp, ['ca', 'status']);
    expect(status.output).toContain(`trust domain ${NEW} (taking identities of ${OLD} too, as aliases)`);
    const payments = await sidecarFor('payments');
    expect(await servedId(payments)).toBe(`spiffe://${NEW}/service/payments`);
    expect(await servedId(gateway)).toBe(`spiffe://${OLD}/service/gateway`);
    // The operator's view of the move: who holds a certificate of which trust domain.
    const before = { gateway: `spiffe://${OLD}/service/gateway`, orders: `spiffe://${OLD}/service/orders`, payments: `spiffe://${NEW}/service/payments` };
    await waitUntil(async () => JSON.stringify(await listedIds()) === JSON.stringify(before) || undefined, { what: `the proxies listed with their identities: ${JSON.stringify(before)}` });
    // The old sidecars keep their snapshot through the resync hold: payments reaches them after it.
    await waitUntil(async () => (await knows(gateway, 'payments')) || undefined, { what: 'gateway to be sent payments', timeoutMs: 20_000 });
    expect(await get(gateway, 'payments')).toMatchObject({ status: 200 });
    expect(await get(payments, 'orders')).toMatchObject({ status: 200 });

    // Renewals (all at once here, by a root rotation) are authorised by the old-domain
    // certificates alone and issued in the new domain.
    for (const token of tokens) expect((await skeinCli(procs, cp, ['token', 'revoke', token])).code).toBe(0);
    const rotate = await skeinCli(procs, cp, ['ca', 'rotate', '--wait', '--timeout', '60s']);
    expect(rotate.code, rotate.output).toBe(0);
    for (const s of [gateway, orders, payments]) {
      await waitUntil(async () => (await servedId(s)) === `spiffe://${NEW}/service/${s.service}` || undefined, { what: `${s.service} to serve a ${NEW} identity`, timeoutMs: 15_000 });
    }
    expect(await get(gateway, 'payments')).toMatchObject({ status: 200 });
    const after = { gateway: `spiffe://${NEW}/service/gateway`, orders: `spiffe://${NEW}/service/orders`, payments: `spiffe://${NEW}/service/payments` };
    await waitUntil(async () => JSON.stringify(await listedIds()) === JSON.stringify(after) || undefined, { what: `the proxies listed in ${NEW}`, timeoutMs: 5_000 });
    // Each sidecar's log says what it moved to, and which trust domains it takes peers in.
    await waitUntil(() => gateway.child.output().split('\n').some((l) => l.includes('identity renewed') && l.includes(`"spiffeId":"spiffe://${NEW}/service/gateway"`) && l.includes(`"peerTrustDomains":["${NEW}","${OLD}"]`)) || undefined, { what: 'the move in gateway\'s log', timeoutMs: 3_000 });
    const { ok, failures } = await load.stop();
    expect([...new Set(failures)]).toEqual([]);
    expect(ok).toBeGreaterThan(0);
  }, 120_000);

  it('once every sidecar moved, starts without the alias (the data dir now says the new trust domain)', async () => {
    cp.child.kill('SIGKILL');
    await cp.child.exited;
    cp = await startControlPlane(procs, { dataDir: cp.dataDir, httpPort: cp.httpPort, grpcPort: cp.grpcPort, args: ['--trust-domain', NEW, ...RESYNC_HOLD] });
    await waitUntil(async () => (await connected()) === 3 || undefined, { what: 'the sidecars to reconnect', timeoutMs: 20_000 });
    expect((await get(gateway, 'orders')).status).toBe(200);
  }, 60_000);
});
