/**
 * Version skew between the control plane and its sidecars: a real control plane with a
 * ring-hash service, a rate limit, onlyPassing and a failover list pushes them to a current sidecar (a real
 * process, whose Hello names the features it understands), and pushes a sidecar built before
 * those features the snapshot without them, under the same version: it ACKs, is SYNCED, keeps taking
 * endpoint changes, and the proxies API and `skein get proxies` say what it runs without.
 */
import { randomUUID } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SnapshotInput } from '../../common/config/schema.js';
import { loadMeshProto, type ControlMessage, type MeshClient } from '../../common/proto/mesh.js';
import type { ProxyView } from '../../control-plane/push/proxies.js';
import type { ControlPlaneSource } from '../../sidecar/control-plane/source.js';
import { controlPlaneTls } from '../../sidecar/control-plane/channel.js';
import { echoHandler, Processes, startUpstream, waitUntil, type TestUpstream } from '../support/index.js';
import { skeinCli, startMeshSidecar, type MeshSidecar } from '../identity/mesh.js';
import { announceInstance, createToken, startControlPlane, type ControlPlaneProcess } from './harness.js';

const RING_HASH_LOST = 'catalog: balanced by least-request, not ring-hash on header x-user, so requests lose their affinity';
const RATE_LIMIT_LOST = 'orders: not rate limited by this instance';
const ROUTE_CHANGES_LOST = 'catalog: rule tagged forwards the request and passes the answer back as they are, without its request header changes';
const RETRY_STATUSES_LOST = 'catalog: does not retry 409';
const PERMISSIONS_LOST = "orders: denies every call from gateway (its intention's HTTP permissions need a newer sidecar)";
const FAILOVER_LOST = 'catalog: no failover (v2): a subset with no healthy endpoint is answered 503 no-healthy-endpoints';
/** Everything the older sidecar runs without, in the order the control plane lists it. */
const LOST = [RING_HASH_LOST, RETRY_STATUSES_LOST, FAILOVER_LOST, RATE_LIMIT_LOST, ROUTE_CHANGES_LOST, PERMISSIONS_LOST];
const WARNING = 'sidecar predates snapshot features in use';

/**
 * What a sidecar built before 2026-12-07 refuses in a snapshot: its schema (that of e03b3ed)
 * takes no `hashOn`, `rateLimit`, `onlyPassing` or `failover` in a service policy, nor `lb: ring-hash`,
 * nor a route rule's `rewrite`, `requestHeaders` or `responseHeaders`.
 */
function refusedByOlderSchema(snapshot: SnapshotInput): string[] {
  return [
    ...Object.entries(snapshot.services ?? {}).flatMap(([name, policy]) => [
      ...(['hashOn', 'rateLimit', 'onlyPassing', 'failover'] as const).filter((f) => policy[f] !== undefined).map((f) => `services.${name}: Unrecognized key(s) in object: '${f}'`),
      ...(policy.lb === 'ring-hash' ? [`services.${name}.lb: Invalid enum value. Expected 'least-request' | 'round-robin' | 'random', received 'ring-hash'`] : []),
      ...(policy.retries?.on ?? []).flatMap((c, i) => (typeof c === 'number' ? [`services.${name}.retries.on[${i}]: Expected string, received number`] : [])),
    ]),
    ...Object.entries(snapshot.routes ?? {}).flatMap(([name, rules]) =>
      rules.flatMap((rule, i) => (['rewrite', 'requestHeaders', 'responseHeaders'] as const).filter((f) => rule[f] !== undefined).map((f) => `routes.${name}[${i}]: Unrecognized key(s) in object: '${f}'`)),
    ),
    ...(snapshot.intentions?.rules ?? []).flatMap((rule, i) => ('permissions' in rule || rule.action === undefined ? [`intentions.rules[${i}].action: Required`] : [])),
  ];
}

interface Received {
  readonly version: string;
  readonly snapshot: SnapshotInput;
}

/**
 * Stands in for a sidecar older than the Hello's `features`: a gRPC client on the real push
 * stream that says Hello without them, and answers every snapshot as such a sidecar's schema
 * would: NACK naming what it refuses, ACK otherwise.
 */
async function olderSidecarStandIn(cp: ControlPlaneProcess, service: string, inboundPort: number, resume?: { instanceId: string; lastVersion: string }) {
  const instanceId = resume?.instanceId ?? `${service}-older-${randomUUID().slice(0, 8)}`;
  const token = await createToken(cp, service);
  const tls = await controlPlaneTls(cp.grpcAddress, cp.caFile);
  const client: MeshClient = new (loadMeshProto().Client)(cp.grpcAddress, tls.credentials, tls.channelOptions);
  const stream = client.Stream();
  const received: Received[] = [];
  const nacks: string[] = [];
  stream.on('data', (message: ControlMessage) => {
    if (message.msg !== 'snapshot') return;
    const { version, json, jsonGzip } = message.snapshot!;
    const snapshot = JSON.parse(jsonGzip?.length ? gunzipSync(jsonGzip).toString() : json) as SnapshotInput;
    received.push({ version, snapshot });
    const refused = refusedByOlderSchema(snapshot);
    if (refused.length > 0) nacks.push(version);
    stream.write(refused.length > 0 ? { nack: { version, reason: refused.join('; ') } } : { ack: { version } });
  });
  stream.on('error', () => {});
  stream.write({ hello: { service, instanceId, version: 'v1', address: '127.0.0.1', inboundPort, adminPort: 0, protocol: 'http', token, lastVersion: resume?.lastVersion ?? '', certExpiryUnix: '0', labels: {} } });
  return {
    instanceId,
    received,
    nacks,
    close: () => {
      stream.end();
      client.close();
    },
  };
}

const procs = new Processes();
const apps: TestUpstream[] = [];
const sources: ControlPlaneSource[] = [];
let cp: ControlPlaneProcess;
let current: MeshSidecar;
let older: Awaited<ReturnType<typeof olderSidecarStandIn>>;

async function proxies(): Promise<{ snapshotVersion: string; proxies: ProxyView[] }> {
  return (await cp.api.get<{ snapshotVersion: string; proxies: ProxyView[] }>('/api/v1/proxies?service=orders')).body;
}

const warnings = (instanceId: string) => cp.child.output().split('\n').filter((l) => l.includes(WARNING) && l.includes(instanceId)).length;

beforeAll(async () => {
  cp = await startControlPlane(procs);
  await cp.api.put('/api/v1/services/catalog/policy', { lb: 'ring-hash', hashOn: { header: 'x-user' }, retries: { attempts: 1, on: ['connect-failure', 409] }, failover: { v2: [{ subset: 'v1' }] } });
  await cp.api.put('/api/v1/intentions', { defaultAction: 'allow', rules: [{ source: 'gateway', destination: 'orders', permissions: [{ action: 'allow', http: { method: 'GET' } }] }] });
  await cp.api.put('/api/v1/services/orders/policy', { rateLimit: { requestsPerSecond: 50 }, onlyPassing: true });
  await cp.api.put('/api/v1/routes/catalog', [{ name: 'tagged', requestHeaders: { set: { 'x-api': 'v2' } } }]);
  const app = await startUpstream(echoHandler('orders'));
  apps.push(app);
  current = await startMeshSidecar(procs, cp, { service: 'orders', appPort: app.port });
  older = await olderSidecarStandIn(cp, 'orders', 25_001);
}, 90_000);

afterAll(async () => {
  older?.close();
  await Promise.all(sources.map((s) => s.close()));
  await procs.killAll();
  await Promise.all(apps.map((a) => a.close()));
});

describe('snapshots for sidecars older than the features the config uses', () => {
  it('a current sidecar gets ring-hash and the rate limit, and ACKs them; it runs without nothing', async () => {
    const own = await waitUntil(async () => {
      const p = (await proxies()).proxies.find((p) => p.instance !== older.instanceId);
      return p?.state === 'SYNCED' && p;
    }, { what: 'the current sidecar SYNCED' });
    // What it installed (and so ACKed): the snapshot with both.
    const config = (await (await fetch(`${current.adminUrl}/config`)).json()) as { snapshot: SnapshotInput };
    expect(config.snapshot.services!.catalog).toMatchObject({ lb: 'ring-hash', hashOn: { header: 'x-user' }, failover: { v2: [{ subset: 'v1' }] } });
    expect(config.snapshot.services!.orders).toMatchObject({ rateLimit: { requestsPerSecond: 50 }, onlyPassing: true });
    expect(config.snapshot.routes!.catalog![0]).toMatchObject({ requestHeaders: { set: { 'x-api': 'v2' } } });
    expect(own.runsWithout).toEqual([]);
    expect(warnings(own.instance)).toBe(0);
  });

  it('the stand-in for an older sidecar gets the snapshot without them under its version, ACKs it, is SYNCED, and is shown running without them', async () => {
    const body = await waitUntil(async () => {
      const b = await proxies();
      return b.proxies.find((p) => p.instance === older.instanceId)?.state === 'SYNCED' && b;
    }, { what: 'the stand-in SYNCED' });
    const latest = older.received.find((r) => r.version === body.snapshotVersion)!;
    expect(latest, 'the version it ACKed is the snapshot\'s own').toBeDefined();
    expect(older.nacks).toEqual([]);
    expect(latest.snapshot.services!.catalog).not.toHaveProperty('lb');
    expect(latest.snapshot.services!.catalog).not.toHaveProperty('hashOn');
    expect(latest.snapshot.services!.catalog).not.toHaveProperty('failover');
    expect(latest.snapshot.services!.orders).not.toHaveProperty('rateLimit');
    // Refused by it too, and dropped at no cost (the endpoints pushed leave instances in warning out already): not listed.
    expect(latest.snapshot.services!.orders).not.toHaveProperty('onlyPassing');
    expect(latest.snapshot.services!.orders!.endpoints!.length).toBeGreaterThan(0);
    expect(latest.snapshot.routes!.catalog).toEqual([expect.not.objectContaining({ requestHeaders: expect.anything() })]);
    expect(latest.snapshot.routes!.catalog![0]!.name).toBe('tagged');
    expect(latest.snapshot.services!.catalog!.retries).toMatchObject({ attempts: 1, on: ['connect-failure'] });
    // Fail closed: the rule keeps its place with a deny in place of its permissions.
    expect(latest.snapshot.intentions!.rules).toEqual([{ source: 'gateway', destination: 'orders', action: 'deny' }]);
    expect(body.proxies.find((p) => p.instance === older.instanceId)!.runsWithout).toEqual(LOST);

    const cli = await skeinCli(procs, cp, ['get', 'proxies', 'orders']);
    expect(cli.code, cli.output).toBe(0);
    const lines = cli.output.split('\n');
    expect(lines[1]).toMatch(/LAST NACK\s+RUNS WITHOUT$/);
    expect(lines.find((l) => l.includes(older.instanceId))).toMatch(new RegExp(`${LOST.map((l) => l.replace(/[()]/g, '\\$&')).join('; ')}$`));
    expect(lines.find((l) => l.startsWith('orders') && !l.includes(older.instanceId))).toMatch(/\s-$/);
  });

  it('the stand-in for an older sidecar takes later endpoint changes, and the control plane warned of it once', async () => {
    const before = older.received.length;
    sources.push(await announceInstance(cp, 'catalog', 'v2'));
    const withV2 = await waitUntil(() => older.received.slice(before).find((r) => r.snapshot.services?.catalog?.endpoints?.some((e) => e.labels?.version === 'v2')), { what: 'the stand-in to receive the new catalog instance' });
    await waitUntil(async () => (await proxies()).proxies.find((p) => p.instance === older.instanceId)?.ackedVersion === withV2.version, { what: 'the stand-in to ACK it' });
    expect(older.nacks).toEqual([]);
    expect(withV2.snapshot.services!.catalog).not.toHaveProperty('lb');
    // Two snapshots or more pushed to it, the same things left out: one warning.
    expect(older.received.length).toBeGreaterThanOrEqual(2);
    expect(warnings(older.instanceId)).toBe(1);
    expect(cp.child.output()).toContain(RATE_LIMIT_LOST);
  });

  it('the stand-in for an older sidecar, back on a new stream running the newest snapshot, is sent nothing and still shown running without them', async () => {
    const snapshotVersion = await waitUntil(async () => {
      const body = await proxies();
      return body.proxies.find((p) => p.instance === older.instanceId)?.ackedVersion === body.snapshotVersion && body.snapshotVersion;
    }, { what: 'the stand-in to run the newest snapshot' });
    // A reconnect that overlaps the stream it replaces, so its instance stays as it was and
    // the newest snapshot stays the newest.
    const first = older;
    older = await olderSidecarStandIn(cp, 'orders', 25_001, { instanceId: first.instanceId, lastVersion: snapshotVersion });
    await waitUntil(async () => (await proxies()).proxies.filter((p) => p.instance === first.instanceId).length === 2, { what: 'the second stream listed' });
    first.close();
    const [back, ...others] = await waitUntil(async () => {
      const listed = (await proxies()).proxies.filter((p) => p.instance === first.instanceId);
      return listed.length === 1 && listed;
    }, { what: 'the first stream gone' });
    expect(others).toEqual([]);
    expect(back).toMatchObject({ state: 'SYNCED', ackedVersion: snapshotVersion, runsWithout: LOST });
    expect((await proxies()).snapshotVersion).toBe(snapshotVersion);
    expect(older.received).toEqual([]);
  });
});
