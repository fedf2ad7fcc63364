/**
 * L7 intentions between real sidecar processes over mTLS (static mode, identities from files):
 * gateway's calls to orders are decided per request by its rule's HTTP permissions (the first
 * that matches, else the default action), admin's by its own L4 rule; a denied request gets
 * the answer an L4 deny gets, naming the rule and permission; a changed file changes the
 * permissions live; a gRPC call is matched as POST on its method's path.
 */
import * as grpc from '@grpc/grpc-js';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SnapshotInput } from '../../common/config/schema.js';
import { Processes, echoHandler, makeCa, makeLeaf, startUpstream, tempDir, waitUntil, writeConfigFile, writeIdentity, writeTempConfig, type SpawnedSidecar, type TestUpstream } from '../support/index.js';
import { metric, scrape, send } from '../sidecar/resilience-fixture.js';

const procs = new Processes();
const upstreams: TestUpstream[] = [];
let orders: SpawnedSidecar;
let gateway: SpawnedSidecar;
let admin: SpawnedSidecar;
let ordersConfig: string;
let ledger: SpawnedSidecar;
let ledgerApp: grpc.Server;
let ledgerClient: LedgerClient | undefined;

type Unary = (req: Buffer, md: grpc.Metadata, options: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Buffer) => void) => void;
interface LedgerClient extends grpc.Client {
  Read: Unary;
  Erase: Unary;
}

const bytes = (b: Buffer): Buffer => b;
const method = (name: string) => ({ path: `/test.Ledger/${name}`, requestStream: false, responseStream: false, requestSerialize: bytes, requestDeserialize: bytes, responseSerialize: bytes, responseDeserialize: bytes });
const LEDGER: grpc.ServiceDefinition = { Read: method('Read'), Erase: method('Erase') };

function intentionsWith(gatewayPermissions: unknown[], version: string): SnapshotInput {
  return {
    version,
    intentions: {
      defaultAction: 'deny',
      rules: [
        { source: 'gateway', destination: 'orders', permissions: gatewayPermissions as never },
        { source: 'admin', destination: 'orders', action: 'allow' },
      ],
    },
  };
}

const FIRST = [
  { action: 'allow', http: { pathPrefix: '/orders', method: ['GET', 'POST'] } },
  { action: 'deny', http: { pathPrefix: '/orders', method: 'DELETE' } },
  { action: 'allow', http: { path: '/reports', headers: { 'x-team': { prefix: 'fin' } } } },
];

async function app(name: string): Promise<number> {
  const u = await startUpstream(echoHandler(name));
  upstreams.push(u);
  return u.port;
}

beforeAll(async () => {
  const ca = makeCa();
  const dir = tempDir('skein-l7-');
  const identity = (service: string) => writeIdentity(dir, service, makeLeaf(ca, service));
  ordersConfig = writeConfigFile(join(dir, 'orders.json'), intentionsWith(FIRST, '1'));
  orders = await procs.sidecar({ service: 'orders', appPort: await app('orders'), identity: identity('orders'), config: ordersConfig });
  ledgerApp = new grpc.Server();
  const answer = (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.from(`done:${call.request.toString()}`));
  ledgerApp.addService(LEDGER, { Read: answer, Erase: answer });
  const ledgerPort = await new Promise<number>((resolve, reject) => ledgerApp.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))));
  const ledgerIntentions = { defaultAction: 'deny' as const, rules: [{ source: 'gateway', destination: 'ledger', permissions: [{ action: 'allow' as const, http: { path: '/test.Ledger/Read', method: 'POST' } }] }] };
  ledger = await procs.sidecar({ service: 'ledger', appPort: ledgerPort, identity: identity('ledger'), config: writeTempConfig({ intentions: ledgerIntentions }), extraArgs: ['--app-protocol', 'grpc'] });
  const callers = writeTempConfig({
    services: {
      orders: { endpoints: [{ address: '127.0.0.1', port: orders.inboundPort }], retries: { attempts: 0 } },
      ledger: { protocol: 'grpc', endpoints: [{ address: '127.0.0.1', port: ledger.inboundPort }], retries: { attempts: 0 } },
    },
  });
  [gateway, admin] = await Promise.all([
    procs.sidecar({ service: 'gateway', appPort: await app('gateway'), identity: identity('gateway'), config: callers }),
    procs.sidecar({ service: 'admin', appPort: await app('admin'), identity: identity('admin'), config: callers }),
  ]);
}, 60_000);

afterAll(async () => {
  ledgerClient?.close();
  ledgerApp?.forceShutdown();
  await procs.killAll();
  await Promise.all(upstreams.map((u) => u.close()));
});

const call = (from: SpawnedSidecar, method: string, path: string, headers: Record<string, string> = {}) => send(`${from.outboundUrl}${path}`, { method, headers: { host: 'orders', ...headers } });
const denied = async (source: string, destination = 'orders') => metric(await scrape(destination === 'orders' ? orders : ledger), 'skein_authz_denied_total', { source, destination });

describe('intentions with HTTP permissions between sidecars', () => {
  it('lets through what a permission allows, to the app', async () => {
    for (const [method, path] of [['GET', '/orders/1'], ['POST', '/orders']] as const) {
      const r = await call(gateway, method, path);
      expect(r.status, r.body).toBe(200);
      expect(JSON.parse(r.body)).toMatchObject({ name: 'orders', method, path });
    }
  });

  it('answers what a permission denies as an L4 deny is answered (403 denied, Proxy-Status naming rule and permission), and counts it', async () => {
    const before = await denied('gateway');
    const r = await call(gateway, 'DELETE', '/orders/1');
    expect(r.status).toBe(403);
    expect(r.headers['x-skein-reason']).toBe('denied');
    expect(r.headers['proxy-status']).toBe('skein-orders-inbound; error=http_request_denied; details="gateway may not call orders: intention rule 0 permission 1 denies the request"');
    expect(await denied('gateway')).toBe(before + 1);
  });

  it('gives a request no permission matches the default action (deny)', async () => {
    const before = await denied('gateway');
    const r = await call(gateway, 'GET', '/inventory');
    expect(r.status).toBe(403);
    expect(r.headers['x-skein-reason']).toBe('denied');
    expect(r.headers['proxy-status']).toBe('skein-orders-inbound; error=http_request_denied; details="gateway may not call orders: no permission of intention rule 0 matches the request, and the default action denies it"');
    // Matched on the path as normalised: /./orders/../inventory is /inventory.
    expect((await call(gateway, 'GET', '/orders/../inventory')).status).toBe(403);
    expect(await denied('gateway')).toBe(before + 2);
  });

  it('matches a permission\'s header check on the headers the caller sent', async () => {
    expect((await call(gateway, 'GET', '/reports', { 'x-team': 'finance' })).status).toBe(200);
    expect((await call(gateway, 'GET', '/reports', { 'x-team': 'ops' })).status).toBe(403);
    expect((await call(gateway, 'GET', '/reports')).status).toBe(403);
  });

  it('decides another caller by its own L4 rule', async () => {
    for (const [method, path] of [['DELETE', '/orders/1'], ['GET', '/inventory']] as const) {
      expect((await call(admin, method, path)).status).toBe(200);
    }
  });

  it('takes changed permissions from a reloaded file, live', async () => {
    writeConfigFile(ordersConfig, intentionsWith([{ action: 'allow', http: { pathPrefix: '/orders', method: ['GET', 'DELETE'] } }], '2'));
    await waitUntil(async () => (await call(gateway, 'DELETE', '/orders/1')).status === 200, { what: 'DELETE from gateway allowed by the reloaded permissions' });
    expect((await call(gateway, 'POST', '/orders')).status).toBe(403);
    expect((await call(admin, 'POST', '/orders')).status).toBe(200);
  });

  it('matches a gRPC call as POST on its method\'s path: a method no permission allows gets PERMISSION_DENIED', async () => {
    const client = new (grpc.makeGenericClientConstructor(LEDGER, 'Ledger'))(`127.0.0.1:${gateway.outboundPort}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': 'ledger' }) as unknown as LedgerClient;
    ledgerClient = client;
    const unary = (name: 'Read' | 'Erase') =>
      new Promise<{ err: grpc.ServiceError | null; res?: Buffer }>((resolve) => client[name](Buffer.from('x'), new grpc.Metadata(), { deadline: Date.now() + 10_000 }, (err, res) => resolve({ err, res })));
    const read = await unary('Read');
    expect(read.err).toBeNull();
    expect(read.res?.toString()).toBe('done:x');
    const erase = await unary('Erase');
    expect(erase.err?.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(erase.err?.metadata.get('x-skein-reason')).toEqual(['denied']);
    expect(await denied('gateway', 'ledger')).toBe(1);
  });
});
