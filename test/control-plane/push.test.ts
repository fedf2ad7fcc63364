/**
 * The push stream end to end: a real control-plane process and the sidecar's
 * ControlPlaneSource (with a recording `apply` in place of the proxy), over TLS verified
 * with the control plane's ca.crt.
 */
import { randomBytes } from 'node:crypto';
import { connect, createServer, type Socket } from 'node:net';
import { gzipSync } from 'node:zlib';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, parseSnapshot } from '../../common/config/parse.js';
import type { Snapshot } from '../../common/config/schema.js';
import type { ControlPlaneSource } from '../../sidecar/control-plane/source.js';
import { freePorts, Processes, tempDir, waitUntil } from '../support/index.js';
import { createToken, startControlPlane, testSource, type ControlPlaneProcess } from './harness.js';

const procs = new Processes();
/** One control plane for the tests that do not stop or replace it; each uses its own services. */
const sharedProcs = new Processes();
let shared: ControlPlaneProcess;
const sources: ControlPlaneSource[] = [];
beforeAll(async () => {
  shared = await startControlPlane(sharedProcs);
});
afterEach(async () => {
  await Promise.all(sources.splice(0).map((s) => s.close()));
  await procs.killAll();
});
afterAll(() => sharedProcs.killAll());

interface Sidecar {
  source: ControlPlaneSource;
  applied: Snapshot[];
  latest(): Snapshot | undefined;
}

let instanceSeq = 0;

function sidecar(cp: ControlPlaneProcess, opts: { service: string; version?: string; token?: string; caFile?: string; refuse?: (s: Snapshot) => string | undefined; port?: number; address?: string; instanceId?: string }): Sidecar {
  const applied: Snapshot[] = [];
  const instanceId = opts.instanceId ?? `${opts.service}-${++instanceSeq}`;
  const source = testSource(cp, { service: opts.service, instanceId, version: opts.version, token: opts.token, caFile: opts.caFile, inboundPort: opts.port ?? 20_000 + instanceSeq, address: opts.address });
  sources.push(source);
  void source.start((raw) => {
    const snap = parseSnapshot(raw);
    const refusal = opts.refuse?.(snap);
    if (refusal) throw new ConfigError([refusal]);
    applied.push(snap);
  });
  return { source, applied, latest: () => applied.at(-1) };
}

/** A TCP relay to the control plane's gRPC port whose connections the test can cut (a network failure). */
async function relayTo(cp: ControlPlaneProcess): Promise<{ address: string; accepted(): number; cut(): void; close(): void }> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server = createServer((inbound) => {
    accepted++;
    const outbound = connect(cp.grpcPort, '127.0.0.1');
    for (const s of [inbound, outbound]) {
      sockets.add(s);
      s.on('error', () => undefined).on('close', () => sockets.delete(s));
    }
    inbound.pipe(outbound).pipe(inbound);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  const cut = () => {
    for (const s of sockets) s.destroy();
  };
  return { address: `127.0.0.1:${port}`, accepted: () => accepted, cut, close: () => (cut(), server.close()) };
}

async function proxies(cp: ControlPlaneProcess, service?: string) {
  const query = service ? `?service=${service}` : '';
  return (await cp.api.get<{ snapshotVersion: string; proxies: { service: string; instance: string; state: string; ackedVersion: string; nackReason: string | null }[] }>(`/api/v1/proxies${query}`)).body;
}

describe('push stream', () => {
  it('registers the sidecar, pushes a snapshot with its endpoint and records the ACK', async () => {
    const cp = shared;
    const sc = sidecar(cp, { service: 'inventory', version: 'v2', token: await createToken(cp, 'inventory'), port: 31001 });
    const snap = await waitUntil(() => (sc.latest()?.services.inventory?.endpoints?.length ?? 0) > 0 && sc.latest(), { what: 'a snapshot with the endpoint' });
    expect(snap.services.inventory!.endpoints).toEqual([{ address: '127.0.0.1', port: 31001, labels: { version: 'v2' } }]);
    const view = await waitUntil(async () => {
      const p = await proxies(cp, 'inventory');
      return p.proxies[0]?.state === 'SYNCED' && p;
    }, { what: 'the proxy to be SYNCED' });
    expect(view.proxies).toHaveLength(1);
    expect(view.proxies[0]).toMatchObject({ service: 'inventory', state: 'SYNCED', ackedVersion: sc.source.currentVersion });
    const services = (await cp.api.get<{ name: string; instances: { health: string; version: string }[] }[]>('/api/v1/services')).body;
    expect(services.find((s) => s.name === 'inventory')).toEqual(expect.objectContaining({ instances: [expect.objectContaining({ health: 'healthy', version: 'v2' })] }));
    expect(sc.source.status).toMatch(/^connected to control plane/);
  });

  it('refuses streams without a valid token, and tokens for another service', async () => {
    const cp = shared;
    const none = sidecar(cp, { service: 'orders' });
    const forged = sidecar(cp, { service: 'orders', token: 'skt_forged' });
    const other = sidecar(cp, { service: 'orders', token: await createToken(cp, 'payments') });
    await waitUntil(() => /UNAUTHENTICATED: no client certificate and no bootstrap token/.test(none.source.status), { what: 'no-token refusal' });
    await waitUntil(() => /UNAUTHENTICATED: bootstrap token is unknown/.test(forged.source.status), { what: 'unknown-token refusal' });
    await waitUntil(() => /PERMISSION_DENIED: credentials are for service "payments"/.test(other.source.status), { what: 'wrong-service refusal' });
    expect((await proxies(cp, 'orders')).proxies).toEqual([]);
    expect(none.source.hasSnapshot).toBe(false);
  });

  it('refuses a Hello whose address no snapshot may carry, so the other sidecars go on taking snapshots', async () => {
    const cp = shared;
    const good = sidecar(cp, { service: 'reviews', token: await createToken(cp, 'reviews'), port: 31011 });
    await waitUntil(() => (good.latest()?.services.reviews?.endpoints?.length ?? 0) === 1, { what: 'the good instance in a snapshot' });
    // An older sidecar, or any client holding a token, may announce what `--advertise-address` refuses.
    const bad = sidecar(cp, { service: 'reviews', token: await createToken(cp, 'reviews'), port: 31012, address: '10.0.0.7:8080' });
    await waitUntil(() => /INVALID_ARGUMENT: invalid Hello: address must be an IP address or a host name/.test(bad.source.status), { what: 'the refusal in its status' });
    // A later change still reaches (and is taken by) the good one; the bad address is in no snapshot.
    await cp.api.put('/api/v1/services/reviews/policy', { timeout: '4s' });
    const snap = await waitUntil(() => good.latest()?.services.reviews?.timeout === 4000 && good.latest(), { what: 'the next snapshot at the good sidecar' });
    expect(snap.services.reviews!.endpoints).toEqual([{ address: '127.0.0.1', port: 31011, labels: { version: 'v1' } }]);
  });

  it('refuses a Hello whose instance id is empty or would address another URL path (the rule `--instance-id` and Consul service IDs share)', async () => {
    const cp = shared;
    const token = await createToken(cp, 'ratings');
    const empty = sidecar(cp, { service: 'ratings', token, instanceId: '' });
    const path = sidecar(cp, { service: 'ratings', token, instanceId: '../x' });
    await waitUntil(() => /INVALID_ARGUMENT: invalid Hello: instance_id "" must be 1 to 253 letters/.test(empty.source.status), { what: 'the empty id refused' });
    await waitUntil(() => /INVALID_ARGUMENT: invalid Hello: instance_id "\.\.\/x" must be 1 to 253 letters/.test(path.source.status), { what: '../x refused' });
    expect((await proxies(cp, 'ratings')).proxies).toEqual([]);
  });

  it('delivers a snapshot of over 4 MiB gzipped (grpc-js\'s default message limit) to its sidecars', async () => {
    const cp = await startControlPlane(procs);
    const sc = sidecar(cp, { service: 'ratings', token: await createToken(cp, 'ratings') });
    await waitUntil(() => sc.latest() !== undefined, { what: 'a first snapshot' });
    // Random names barely compress: 8 services of about 900 KB of rules each (a write may be 1 MiB).
    const rules = () => {
      const out: { name: string; match: { pathPrefix: string } }[] = [];
      for (let size = 0; size < 900_000; size += 520) out.push({ name: randomBytes(300).toString('base64'), match: { pathPrefix: `/${randomBytes(60).toString('base64url')}` } });
      return out;
    };
    for (let i = 0; i < 8; i++) await cp.api.put(`/api/v1/routes/big${i}`, rules());
    const snap = await waitUntil(() => (sc.latest()?.routes.big7?.length ?? 0) > 0 && sc.latest(), { timeoutMs: 20_000, what: 'the big snapshot at the sidecar' });
    expect(Object.keys(snap.routes).filter((s) => s.startsWith('big'))).toHaveLength(8);
    expect(gzipSync(JSON.stringify(snap)).length).toBeGreaterThan(4 * 1024 * 1024);
    await waitUntil(async () => (await proxies(cp, 'ratings')).proxies[0]?.state === 'SYNCED' || undefined, { what: 'the sidecar SYNCED on it' });
  }, 60_000);

  it('does not trust a control plane whose certificate is not signed by --ca-file', async () => {
    const cp = shared;
    const other = await startControlPlane(procs);
    const sc = sidecar(cp, { service: 'users', token: await createToken(cp, 'users'), caFile: other.caFile });
    await waitUntil(() => /UNAVAILABLE/.test(sc.source.status), { what: 'a TLS failure in the status' });
    expect(sc.source.status).toMatch(/^waiting for control plane at/);
    expect(sc.source.hasSnapshot).toBe(false);
  });

  it('a split changed through the API reaches the sidecar within a second', async () => {
    const cp = shared;
    const token = await createToken(cp, 'search');
    const v1 = sidecar(cp, { service: 'search', version: 'v1', token });
    const v2 = sidecar(cp, { service: 'search', version: 'v2', token });
    await waitUntil(() => v1.latest()?.services.search?.endpoints?.length === 2 && v2.latest()?.services.search?.endpoints?.length === 2, { what: 'both endpoints' });
    const started = Date.now();
    await cp.api.put('/api/v1/routes/search/split', { v1: 70, v2: 30 });
    await waitUntil(() => [v1, v2].every((s) => s.latest()?.routes.search?.[0]?.split?.v2 === 30), { what: 'the new split on both', timeoutMs: 1_000, intervalMs: 5 });
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('records a NACK with its reason and the sidecar keeps its last good snapshot', async () => {
    const cp = shared;
    await cp.api.put('/api/v1/services/reviews/policy', { timeout: '2s' });
    const sc = sidecar(cp, { service: 'reviews', token: await createToken(cp, 'reviews'), refuse: (s) => (s.services.reviews!.timeout === 7_000 ? 'services.reviews.timeout: 7s is not allowed here' : undefined) });
    await waitUntil(() => sc.latest()?.services.reviews?.endpoints?.length === 1, { what: 'first snapshot' });
    const good = sc.source.currentVersion;
    const write = await cp.api.put('/api/v1/services/reviews/policy', { timeout: '7s' });
    const refused = write.headers.get('skein-snapshot-version');
    const view = await waitUntil(async () => {
      const p = await proxies(cp, 'reviews');
      return p.proxies[0]?.state === 'NACKED' && p.proxies[0];
    }, { what: 'NACKED' });
    expect(view.nackReason).toBe('services.reviews.timeout: 7s is not allowed here');
    expect((view as unknown as { nackedVersion: string }).nackedVersion).toBe(refused);
    expect(sc.source.currentVersion).toBe(good);
    expect(sc.latest()!.services.reviews!.timeout).toBe(2_000);
    // The next good snapshot is ACKed and the proxy is SYNCED again.
    await cp.api.put('/api/v1/services/reviews/policy', { timeout: '3s' });
    await waitUntil(async () => (await proxies(cp, 'reviews')).proxies[0]?.state === 'SYNCED', { what: 'SYNCED again' });
    expect(sc.latest()!.services.reviews!.timeout).toBe(3_000);
  });

  it('waits for a control plane that is not up yet, then connects', async () => {
    const [httpPort, grpcPort] = (await freePorts(2)) as [number, number];
    const dataDir = tempDir('skein-cp-');
    const pending = { grpcAddress: `127.0.0.1:${grpcPort}`, caFile: `${dataDir}/ca.crt` } as ControlPlaneProcess;
    // The CA file does not exist yet either: the sidecar keeps waiting rather than crash.
    const sc = sidecar(pending, { service: 'catalog', token: 'skt_later' });
    await waitUntil(() => /^waiting for control plane at 127\.0\.0\.1:\d+ \(/.test(sc.source.status), { what: 'waiting status' });
    const cp = await startControlPlane(procs, { dataDir, httpPort, grpcPort });
    expect(sc.source.hasSnapshot).toBe(false);
    // The token did not exist before; a sidecar given a real one connects on its next attempt.
    const sc2 = sidecar(cp, { service: 'catalog', token: await createToken(cp, 'catalog') });
    await waitUntil(() => sc2.source.hasSnapshot, { what: 'snapshot after the control plane came up' });
    expect(sc.source.hasSnapshot).toBe(false);
  });

  it('keeps serving through a control-plane restart and resyncs to the newest snapshot', async () => {
    const cp = await startControlPlane(procs);
    const token = await createToken(cp, 'catalog');
    const a = sidecar(cp, { service: 'catalog', version: 'v1', token });
    const b = sidecar(cp, { service: 'catalog', version: 'v2', token });
    await waitUntil(() => a.latest()?.services.catalog?.endpoints?.length === 2, { what: 'both endpoints' });
    const before = a.source.currentVersion;
    cp.child.kill('SIGKILL');
    await cp.child.exited;
    await waitUntil(() => /unreachable.*serving snapshot/.test(a.source.status), { what: 'unreachable status' });
    expect(a.source.currentVersion).toBe(before);
    const applies = a.applied.length;

    const again = await startControlPlane(procs, { dataDir: cp.dataDir, httpPort: cp.httpPort, grpcPort: cp.grpcPort });
    // During the resync hold the sidecars keep what they have (the registry is still refilling)...
    const reconnected = await waitUntil(async () => {
      const p = await proxies(again);
      return p.proxies.length === 2 && p;
    }, { what: 'both reconnected' });
    expect(a.applied.length).toBe(applies);
    // ...and show as STALE: they run an older version than the one being pushed...
    expect(reconnected.proxies.map((p) => p.state)).toEqual(['STALE', 'STALE']);
    // ...naming the version they do run, not none.
    expect(reconnected.proxies.map((p) => p.ackedVersion).sort()).toEqual([before, b.source.currentVersion].sort());
    // ...until they get the new control plane's snapshot, with both endpoints.
    await waitUntil(async () => (await proxies(again)).proxies.every((p) => p.state === 'SYNCED'), { what: 'both SYNCED after restart', timeoutMs: 10_000 });
    expect(Number(a.source.currentVersion)).toBeGreaterThan(Number(before));
    expect(a.latest()!.services.catalog!.endpoints).toHaveLength(2);
    expect(b.latest()!.services.catalog!.endpoints).toHaveLength(2);
  });

  it('answers a write made during the resync hold saying until when sidecars that kept their snapshot are held, and gives it to them then', async () => {
    const cp = await startControlPlane(procs);
    const a = sidecar(cp, { service: 'catalog', token: await createToken(cp, 'catalog') });
    await waitUntil(() => a.source.hasSnapshot, { what: 'a snapshot' });
    cp.child.kill('SIGKILL');
    await cp.child.exited;
    const again = await startControlPlane(procs, { dataDir: cp.dataDir, httpPort: cp.httpPort, grpcPort: cp.grpcPort, args: ['--resync-hold', '5s'] });
    await waitUntil(async () => (await proxies(again)).proxies.length === 1, { what: 'the sidecar to reconnect' });

    const put = await again.api.put('/api/v1/services/catalog/policy', { timeout: '4s' });
    const until = put.headers.get('skein-held-until')!;
    expect(until).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(Date.parse(until)).toBeGreaterThan(Date.now());
    expect(put.headers.get('skein-published')).toBeNull();
    expect(put.headers.get('warning')).toMatch(
      new RegExp(`^299 - "published, but sidecars that reconnected running a snapshot keep it until the resync hold after the control plane's start ends at ${until.replace(/\./g, '\\.')} \\(in [1-5] s\\), and get this write then"$`),
    );
    const applied = await fetch(`${again.adminUrl}/api/v1/apply`, {
      method: 'POST',
      headers: { authorization: `Bearer ${again.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ services: { catalog: { timeout: '5s' } } }),
    });
    const body = (await applied.json()) as { snapshotVersion: string; published: boolean; heldUntil?: string; warning?: string };
    expect(body).toMatchObject({ published: true, heldUntil: until, warning: expect.stringMatching(/^published, but sidecars that reconnected running a snapshot keep it until/) });
    expect(a.source.currentVersion).not.toBe(body.snapshotVersion);

    // Held, the sidecar gets the write once the hold ends, not before; later answers say nothing of a hold.
    await waitUntil(() => a.source.currentVersion === body.snapshotVersion, { what: 'the write to reach the held sidecar', timeoutMs: 10_000 });
    expect(Date.now()).toBeGreaterThanOrEqual(Date.parse(until));
    const later = await again.api.put('/api/v1/services/catalog/policy', { timeout: '6s' });
    expect(later.headers.get('skein-held-until')).toBeNull();
    expect(later.headers.get('warning')).toBeNull();
  });

  it('answers a write made during the resync hold as usual when the hold keeps no sidecar\'s snapshot (a first start, or only new sidecars)', async () => {
    const cp = await startControlPlane(procs, { args: ['--resync-hold', '30s'] });
    const fresh = sidecar(cp, { service: 'catalog', token: await createToken(cp, 'catalog') });
    await waitUntil(() => fresh.source.hasSnapshot, { what: 'a snapshot for the new sidecar' });
    const put = await cp.api.put('/api/v1/services/catalog/policy', { timeout: '4s' });
    expect(put.headers.get('skein-held-until')).toBeNull();
    expect(put.headers.get('warning')).toBeNull();
    await waitUntil(() => fresh.latest()?.services.catalog?.timeout === 4_000, { what: 'the write on the new sidecar' });
  });

  it('after a broken connection, resumes on the snapshot it runs when that is still the newest, and says it is connected', async () => {
    const cp = shared;
    const relay = await relayTo(cp);
    try {
      const sc = sidecar({ ...cp, grpcAddress: relay.address }, { service: 'ratings', token: await createToken(cp, 'ratings') });
      // On the snapshot that holds its own endpoint: the first one a new stream gets may be the
      // one made before it registered, which the next replaces.
      await waitUntil(async () => sc.latest()?.services.ratings?.endpoints?.length === 1 && (await proxies(cp, 'ratings')).proxies[0]?.state === 'SYNCED', { what: 'SYNCED on a snapshot with its endpoint' });
      const version = sc.source.currentVersion;
      const applied = sc.applied.length;
      const connections = relay.accepted();
      relay.cut();
      // A new connection through the relay shows the sidecar noticed the cut. Its "unreachable"
      // status lasts only the first backoff (0-50 ms here), too short to catch by polling.
      await waitUntil(() => relay.accepted() > connections, { what: 'the sidecar to reconnect after the cut' });
      await waitUntil(() => /^connected/.test(sc.source.status), { what: 'the sidecar to report the new stream', timeoutMs: 5_000 });
      expect(sc.source.status).toBe(`connected to control plane at ${relay.address}; snapshot ${version}`);
      const view = await waitUntil(async () => {
        const p = (await proxies(cp, 'ratings')).proxies;
        return p.length === 1 && p[0]!.state === 'SYNCED' && p;
      }, { what: 'one SYNCED proxy' });
      expect(view[0]!.ackedVersion).toBe(version);
      // Nothing was resent: the snapshot it runs was still the newest.
      expect(sc.applied.length).toBe(applied);
    } finally {
      relay.close();
    }
  });

  it('withdraws a sidecar that says goodbye at once', async () => {
    const cp = shared;
    const token = await createToken(cp, 'cart');
    const watcher = sidecar(cp, { service: 'cart', version: 'v1', token });
    const leaving = sidecar(cp, { service: 'cart', version: 'v2', token });
    await waitUntil(() => watcher.latest()?.services.cart?.endpoints?.length === 2, { what: 'both endpoints' });
    await leaving.source.close();
    await waitUntil(() => watcher.latest()?.services.cart?.endpoints?.length === 1, { what: 'clean withdrawal', timeoutMs: 1_000 });
    expect((await proxies(cp, 'cart')).proxies).toHaveLength(1);
  });
});
