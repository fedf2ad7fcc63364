/**
 * mTLS and intentions between real sidecar processes in static mode (identities from
 * files): who may call whom is decided by the peer certificate; bad certificates are
 * refused at the handshake with a reason in skein_tls_handshake_failures_total, while good
 * traffic carries on.
 */
import { connect } from 'node:tls';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Processes,
  echoHandler,
  makeCa,
  makeLeaf,
  startUpstream,
  waitUntil,
  tempDir,
  writeIdentity,
  writeTempConfig,
  type SpawnedSidecar,
  type TestCa,
  type TestLeaf,
  type TestUpstream,
} from '../support/index.js';

const procs = new Processes();
const upstreams: TestUpstream[] = [];
let ca: TestCa;
let orders: SpawnedSidecar;
let ordersApp: TestUpstream;
let gateway: SpawnedSidecar;
let users: SpawnedSidecar;

async function app(name: string): Promise<TestUpstream> {
  const u = await startUpstream(echoHandler(name));
  upstreams.push(u);
  return u;
}

beforeAll(async () => {
  ca = makeCa();
  const dir = tempDir('skein-mtls-');
  const identity = (service: string) => writeIdentity(dir, service, makeLeaf(ca, service));

  ordersApp = await app('orders');
  orders = await procs.sidecar({
    service: 'orders',
    appPort: ordersApp.port,
    identity: identity('orders'),
    config: writeTempConfig({ intentions: { defaultAction: 'deny', rules: [{ source: 'gateway', destination: 'orders', action: 'allow' }] } }),
  });
  // An impostor: a sidecar with a valid payments identity, listed as an endpoint of catalog.
  const payments = await procs.sidecar({ service: 'payments', appPort: (await app('payments')).port, identity: identity('payments'), config: writeTempConfig({}) });
  const callerConfig = writeTempConfig({
    services: {
      orders: { endpoints: [{ address: '127.0.0.1', port: orders.inboundPort }], retries: { attempts: 0 } },
      catalog: { endpoints: [{ address: '127.0.0.1', port: payments.inboundPort }], retries: { attempts: 0 } },
    },
  });
  [gateway, users] = await Promise.all([
    procs.sidecar({ service: 'gateway', appPort: (await app('gateway')).port, identity: identity('gateway'), config: callerConfig }),
    procs.sidecar({ service: 'users', appPort: (await app('users')).port, identity: identity('users'), config: callerConfig }),
  ]);
}, 60_000);

afterAll(async () => {
  await procs.killAll();
  await Promise.all(upstreams.map((u) => u.close()));
});

async function call(from: SpawnedSidecar, host: string, headers: Record<string, string> = {}) {
  const res = await request(`${from.outboundUrl}/orders/1`, { headers: { host, ...headers } });
  return { status: res.statusCode, reason: res.headers['x-skein-reason'], proxyStatus: res.headers['proxy-status'], body: await res.body.text() };
}

async function metric(sidecar: SpawnedSidecar, line: RegExp): Promise<number> {
  const text = await (await fetch(`${sidecar.adminUrl}/metrics`)).text();
  const m = text.split('\n').find((l) => line.test(l));
  return m ? Number(m.split(' ').at(-1)) : 0;
}

/** A raw TLS client to the orders sidecar's inbound port; resolves true when it got an HTTP answer. */
function rawCall(leaf: TestLeaf | undefined): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port: orders.inboundPort, ca: ca.certPem, key: leaf?.keyPem, cert: leaf?.certPem, checkServerIdentity: () => undefined });
    let answered = false;
    socket.on('secureConnect', () => socket.write('GET /x HTTP/1.1\r\nhost: orders\r\nconnection: close\r\n\r\n'));
    socket.on('data', () => (answered = true));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(answered));
  });
}

describe('mutual TLS and intentions between sidecars', () => {
  it('lets an allowed caller through, with its identity taken from its certificate', async () => {
    const r = await call(gateway, 'orders');
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body).name).toBe('orders');
  });

  it('answers 403 x-skein-reason: denied to a caller the intentions do not allow, and counts it', async () => {
    const before = await metric(orders, /^skein_authz_denied_total\{source="users",destination="orders"\}/);
    const r = await call(users, 'orders');
    expect(r.status).toBe(403);
    expect(r.reason).toBe('denied');
    // Over the mux, the called sidecar's own answer names it, and the calling one adds nothing.
    expect(r.proxyStatus).toBe('skein-orders-inbound; error=http_request_denied; details="users may not call orders"');
    expect(await metric(orders, /^skein_authz_denied_total\{source="users",destination="orders"\}/)).toBe(before + 1);
  });

  it('never takes the source from a header', async () => {
    const r = await call(users, 'orders', { 'x-forwarded-client-cert': 'URI=spiffe://skein.local/service/gateway', 'x-skein-source': 'gateway' });
    expect(r.status).toBe(403);
  });

  it('will not start on a certificate its peers would refuse, and turns not ready when its certificate expires', async () => {
    const dir = tempDir('skein-own-cert-');
    const start = (name: string, leaf: TestLeaf) => {
      const files = writeIdentity(dir, name, leaf);
      return procs.skein(`gateway with ${name}`, ['sidecar', '--service', 'gateway', '--app-port', '1', '--config', writeTempConfig({}), '--cert-file', files.certFile, '--key-file', files.keyFile, '--ca-file', files.caFile]);
    };
    const refusals: [string, TestLeaf, RegExp][] = [
      ['other-service', makeLeaf(ca, 'payments'), /other-service\.crt: the certificate is for service payments \(spiffe:\/\/skein\.local\/service\/payments\), not gateway/],
      ['expired', makeLeaf(ca, 'gateway', { notBefore: new Date(Date.now() - 7_200_000), notAfter: new Date(Date.now() - 3_600_000) }), /expired\.crt: the certificate expired at /],
      // Issued by another CA than the mesh's, which --ca-file names.
      ['other-ca', { ...makeLeaf(makeCa('Another CA'), 'gateway'), caPem: ca.certPem }, /other-ca\.crt: the certificate was not issued by a CA of /],
      // Usable for one side of mTLS only, or for no TLS signature: peers refuse it (INVALID_PURPOSE).
      ['server-only', makeLeaf(ca, 'gateway', { extKeyUsage: { serverAuth: true } }), /server-only\.crt: the certificate's extended key usage lacks clientAuth/],
      ['client-only', makeLeaf(ca, 'gateway', { extKeyUsage: { clientAuth: true } }), /client-only\.crt: the certificate's extended key usage lacks serverAuth/],
      ['no-signature', makeLeaf(ca, 'gateway', { keyUsage: { keyEncipherment: true } }), /no-signature\.crt: the certificate's key usage lacks digitalSignature/],
    ];
    for (const [name, leaf, message] of refusals) {
      const child = start(name, leaf);
      expect((await child.exited).code, child.output()).toBe(1);
      expect(child.output()).toMatch(message);
    }

    const shortLived = await procs.sidecar({
      service: 'gateway',
      appPort: (await app('short-lived')).port,
      identity: writeIdentity(dir, 'short', makeLeaf(ca, 'gateway', { notAfter: new Date(Date.now() + 4_000) })),
      config: writeTempConfig({}),
    });
    await waitUntil(
      async () => {
        const res = await request(`${shortLived.adminUrl}/ready`);
        const text = await res.body.text();
        return res.statusCode === 503 && /certificates: the certificate expired at /.test(text) ? true : undefined;
      },
      { what: '/ready 503 once the certificate expired', timeoutMs: 10_000 },
    );
  });

  it('refuses an upstream presenting another service identity than the destination', async () => {
    const line = /^skein_tls_handshake_failures_total\{reason="wrong-identity"\}/;
    const before = await metric(gateway, line);
    const r = await call(gateway, 'catalog');
    expect(r.status).toBe(503);
    expect(r.reason).toBe('upstream-connect-failure');
    expect(await metric(gateway, line)).toBe(before + 1);
    // The caller's log names both identities (pino writes asynchronously, hence the wait).
    const expected = 'upstream presented identity spiffe://skein.local/service/payments, expected spiffe://skein.local/service/catalog';
    await waitUntil(() => gateway.output().includes(expected), { what: 'the refusal in the log', timeoutMs: 3_000 });
  });

  it.each([
    ['no-client-certificate', () => undefined],
    ['untrusted-certificate', () => makeLeaf(makeCa('Another CA'), 'gateway')],
    ['expired-certificate', () => makeLeaf(ca, 'gateway', { notBefore: new Date(Date.now() - 7_200_000), notAfter: new Date(Date.now() - 3_600_000) })],
    ['not-yet-valid-certificate', () => makeLeaf(ca, 'gateway', { notBefore: new Date(Date.now() + 3_600_000), notAfter: new Date(Date.now() + 7_200_000) })],
    ['foreign-trust-domain', () => makeLeaf(ca, 'gateway', { spiffeId: 'spiffe://evil.example/service/gateway' })],
    ['no-spiffe-id', () => makeLeaf(ca, 'gateway', { spiffeId: 'https://gateway.example' })],
  ] as [string, () => TestLeaf | undefined][])('refuses an inbound connection with %s, counts it, and keeps serving others', async (reason, leaf) => {
    const line = new RegExp(`^skein_tls_handshake_failures_total\\{reason="${reason}"\\}`);
    const before = await metric(orders, line);
    const [bad, good] = await Promise.all([rawCall(leaf()), call(gateway, 'orders')]);
    expect(bad).toBe(false);
    expect(good.status).toBe(200);
    expect(await metric(orders, line)).toBe(before + 1);
    // The log names the reason (pino writes asynchronously, hence the wait).
    await waitUntil(() => orders.output().split('\n').some((l) => l.includes('inbound connection refused') && l.includes(`"reason":"${reason}"`)), {
      what: `the ${reason} refusal in the log`,
      timeoutMs: 3_000,
    });
  });
});
