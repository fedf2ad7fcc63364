/**
 * Local rate limiting (a service policy's `rateLimit`): the inbound sidecar of each instance
 * admits `burst` requests at once and `requestsPerSecond` after, and answers the rest itself
 * (`429`, `x-skein-reason: rate-limited`, `Retry-After`) before they reach the app. A caller's
 * outbound sidecar relays that answer without retrying it, and a reload changes the limit.
 */
import * as grpc from '@grpc/grpc-js';
import { Agent, request } from 'node:http';
import { connect as h2connect } from 'node:http2';
import { connect, type Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import type { SnapshotInput } from '../../common/config/schema.js';
import { echoHandler, freePort, makeCa, makeLeaf, Processes, startUpstream, tempDir, waitUntil, writeConfigFile, writeIdentity, writeTempConfig, type TestUpstream } from '../support/index.js';
import { grpcFrame } from './grpc-fixture.js';
import { rawExchange } from './http.js';
import { metric, scrape, send } from './resilience-fixture.js';

const procs = new Processes();
const upstreams: TestUpstream[] = [];

afterAll(async () => {
  await procs.killAll();
  await Promise.all(upstreams.map((u) => u.close()));
});

interface RawAnswer {
  readonly status: number;
  readonly headers: Map<string, string>;
}

/**
 * `count` GETs of `path` at once: every connection is open before any request is written, so
 * they reach the sidecar within a few milliseconds, well inside the time one token takes.
 */
async function burst(port: number, path: string, count: number): Promise<RawAnswer[]> {
  const sockets = await Promise.all(
    Array.from({ length: count }, () => new Promise<Socket>((resolve, reject) => {
      const socket = connect({ port, host: '127.0.0.1' }, () => resolve(socket));
      socket.once('error', reject);
    })),
  );
  const answers = sockets.map(
    (socket) =>
      new Promise<RawAnswer>((resolve, reject) => {
        let text = '';
        socket.setEncoding('latin1');
        socket.on('data', (d: string) => {
          text += d;
          const end = text.indexOf('\r\n\r\n');
          if (end < 0) return;
          const [statusLine, ...lines] = text.slice(0, end).split('\r\n');
          const headers = new Map(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
          socket.destroy();
          resolve({ status: Number(statusLine!.split(' ')[1]), headers });
        });
        socket.once('error', reject);
      }),
  );
  for (const socket of sockets) socket.write(`GET ${path} HTTP/1.1\r\nHost: catalog\r\n\r\n`);
  return Promise.all(answers);
}

/** One gRPC call straight to a sidecar's inbound port over mTLS, as a calling sidecar with `leaf`'s identity: its grpc-status. */
async function directCall(port: number, leaf: ReturnType<typeof makeLeaf>): Promise<string> {
  const session = h2connect(`https://127.0.0.1:${port}`, { ca: leaf.caPem, key: leaf.keyPem, cert: leaf.certPem, checkServerIdentity: () => undefined });
  session.on('error', () => {});
  try {
    const stream = session.request({ ':method': 'POST', ':path': '/test.Echo/Echo', ':authority': 'catalog', 'content-type': 'application/grpc', te: 'trailers' });
    stream.on('error', () => {});
    const status = new Promise<string>((resolve) => {
      stream.on('response', (h) => h['grpc-status'] !== undefined && resolve(String(h['grpc-status'])));
      stream.on('trailers', (t) => resolve(String(t['grpc-status'])));
      stream.on('close', () => resolve(`closed with ${stream.rstCode} and no status`));
    });
    stream.resume();
    stream.end(grpcFrame('direct'));
    return await status;
  } finally {
    session.destroy();
  }
}

const appSaw = (app: TestUpstream, path: string): number => app.requests.filter((r) => r.url === path).length;

const catalogConfig = (version: string, rateLimit: { requestsPerSecond: number; burst?: number }): SnapshotInput => ({
  version,
  services: { catalog: { rateLimit } },
});

async function versionApplied(adminUrl: string, version: string): Promise<void> {
  await waitUntil(async () => ((await (await fetch(`${adminUrl}/config`)).json()) as { version: string }).version === version, { what: `version ${version} applied` });
}

describe('an instance over its rate limit', () => {
  it('answers 429 rate-limited with Retry-After before the app, counts it, admits again once refilled, and takes a raised limit on reload', async () => {
    const app = await startUpstream(echoHandler('catalog'));
    upstreams.push(app);
    const file = writeTempConfig(catalogConfig('1', { requestsPerSecond: 5, burst: 5 }));
    const sc = await procs.sidecar({ service: 'catalog', appPort: app.port, config: file });

    const answers = await burst(sc.inboundPort, '/burst', 20);
    const limited = answers.filter((a) => a.status === 429);
    expect(answers.filter((a) => a.status === 200)).toHaveLength(5);
    expect(limited).toHaveLength(15);
    for (const a of limited) {
      expect(a.headers.get('x-skein-reason')).toBe('rate-limited');
      expect(a.headers.get('retry-after')).toBe('1');
    }
    expect(appSaw(app, '/burst')).toBe(5);

    const s = await scrape(sc);
    expect(metric(s, 'skein_rate_limited_total', { source: 'unknown', destination: 'catalog' })).toBe(15);
    expect(metric(s, 'skein_requests_total', { direction: 'inbound', destination: 'catalog', code: '429' })).toBe(15);
    const config = (await (await fetch(`${sc.adminUrl}/config`)).json()) as { snapshot: { services: { catalog: { rateLimit: unknown } } } };
    expect(config.snapshot.services.catalog.rateLimit).toEqual({ requestsPerSecond: 5, burst: 5 });

    // A token comes back every 200 ms: polled (each refused poll counted too), not slept for.
    const again = await waitUntil(async () => {
      const r = await send(`http://127.0.0.1:${sc.inboundPort}/refilled`, { headers: { host: 'catalog' } });
      return r.status === 200 ? r : undefined;
    }, { what: 'a request admitted after the refill' });
    expect(JSON.parse(again.body).name).toBe('catalog');

    // A connection open before the reload is served after it, under the new limit.
    const kept = new Agent({ keepAlive: true, maxSockets: 1 });
    const onKept = (path: string) =>
      new Promise<{ status: number; reused: boolean }>((resolve, reject) => {
        const req = request({ port: sc.inboundPort, host: '127.0.0.1', path, agent: kept, headers: { host: 'catalog' } }, (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0, reused: req.reusedSocket }));
        });
        req.on('error', reject);
        req.end();
      });
    await onKept('/before-reload');

    writeConfigFile(file, catalogConfig('2', { requestsPerSecond: 1000 }));
    await versionApplied(sc.adminUrl, '2');
    const raised = await burst(sc.inboundPort, '/raised', 20);
    expect(raised.map((a) => a.status)).toEqual(Array(20).fill(200));
    expect(appSaw(app, '/raised')).toBe(20);
    for (let i = 0; i < 3; i++) expect(await onKept('/after-reload')).toEqual({ status: 200, reused: true });
    kept.destroy();
  });

  it("limits a route's requests by its own bucket in place of the total's", async () => {
    const app = await startUpstream(echoHandler('catalog'));
    upstreams.push(app);
    const rateLimit = { requestsPerSecond: 1000, routes: [{ match: { pathPrefix: '/search' }, requestsPerSecond: 0.01, burst: 1 }] };
    const sc = await procs.sidecar({ service: 'catalog', appPort: app.port, config: writeTempConfig({ services: { catalog: { rateLimit } } }) });
    const get = (path: string) => send(`http://127.0.0.1:${sc.inboundPort}${path}`, { headers: { host: 'catalog' } });
    expect((await get('/search?q=a')).status).toBe(200);
    const limited = await get('/search?q=b');
    expect(limited.status).toBe(429);
    expect(limited.body).toMatch(/^catalog admits 0\.01 requests per second per instance on rateLimit\.routes\[0\] \(burst 1\): retry after 100s/);
    const others = await burst(sc.inboundPort, '/items', 10);
    expect(others.map((a) => a.status)).toEqual(Array(10).fill(200));
  });

  it('answers a WebSocket upgrade over the limit 429 with Retry-After on its connection, as a request', async () => {
    const app = await startUpstream(echoHandler('catalog'));
    upstreams.push(app);
    const sc = await procs.sidecar({ service: 'catalog', appPort: app.port, config: writeTempConfig(catalogConfig('1', { requestsPerSecond: 0.01, burst: 1 })) });
    expect((await send(`http://127.0.0.1:${sc.inboundPort}/first`, { headers: { host: 'catalog' } })).status).toBe(200);
    const answer = await rawExchange(sc.inboundPort, 'GET /ws HTTP/1.1\r\nHost: catalog\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
    const head = answer.slice(0, answer.indexOf('\r\n\r\n')).split('\r\n');
    expect(head[0]).toBe('HTTP/1.1 429 Too Many Requests');
    expect(head).toEqual(expect.arrayContaining(['x-skein-reason: rate-limited', 'retry-after: 100']));
    expect(appSaw(app, '/ws')).toBe(0);
  });

  // Plain: HTTP/1.1 between the sidecars; mTLS: the sidecars' mux, which marks the answer as the peer sidecar's own.
  it.each(['plain', 'mTLS'] as const)('is relayed to the caller as it is, never retried by the caller\'s sidecar (%s)', async (mode) => {
    const [catalogApp, webApp] = await Promise.all([startUpstream(echoHandler('catalog')), startUpstream(echoHandler('web'))]);
    upstreams.push(catalogApp, webApp);
    const dir = tempDir();
    const ca = makeCa();
    const identityOf = (service: string) => (mode === 'mTLS' ? writeIdentity(dir, service, makeLeaf(ca, service)) : undefined);
    const catalog = await procs.sidecar({ service: 'catalog', appPort: catalogApp.port, config: writeTempConfig(catalogConfig('1', { requestsPerSecond: 0.01, burst: 1 })), identity: identityOf('catalog') });
    // Every condition a caller may retry on, for GETs and POSTs alike.
    const web = await procs.sidecar({
      service: 'web',
      appPort: webApp.port,
      config: writeTempConfig({
        services: { catalog: { retries: { attempts: 3, on: ['connect-failure', 'reset', 'gateway-error', '5xx', 'unavailable'], backoff: { base: '1ms' } }, endpoints: [{ address: '127.0.0.1', port: catalog.inboundPort, labels: { version: 'v1' } }] } },
        routes: { catalog: [{ match: { pathPrefix: '/' }, retryNonIdempotent: true }] },
      }),
      identity: identityOf('web'),
    });
    const call = (method: string) => send(`${web.outboundUrl}/item`, { method, headers: { host: 'catalog' } });
    expect((await call('GET')).status).toBe(200);
    for (const method of ['GET', 'POST']) {
      const r = await call(method);
      expect(r.status, r.body).toBe(429);
      expect(r.headers['x-skein-reason']).toBe('rate-limited');
      expect(Number(r.headers['retry-after'])).toBeGreaterThanOrEqual(99);
    }
    expect(appSaw(catalogApp, '/item')).toBe(1);
    expect(metric(await scrape(web), 'skein_retries_total')).toBe(0);
    expect(metric(await scrape(catalog), 'skein_rate_limited_total', { source: mode === 'mTLS' ? 'web' : 'unknown', destination: 'catalog' })).toBe(2);
  });

  it("answers a gRPC caller over its own limit 8 RESOURCE_EXHAUSTED with the reason and retry-after, never retried, while another caller's identity has its own", async () => {
    const identity = (b: Buffer): Buffer => b;
    const definition: grpc.ServiceDefinition = {
      Echo: { path: '/test.Echo/Echo', requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity },
    };
    let calls = 0;
    const server = new grpc.Server();
    server.addService(definition, { Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => (calls++, cb(null, call.request)) });
    const appPort = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))));
    const webApp = await startUpstream(echoHandler('web'));
    upstreams.push(webApp);
    const ca = makeCa();
    const dir = tempDir();
    const catalogInbound = await freePort();
    const config = writeTempConfig(
      {
        services: {
          catalog: {
            protocol: 'grpc',
            rateLimit: { requestsPerSecond: 100, perSource: { requestsPerSecond: 50 }, sources: { web: { requestsPerSecond: 0.01, burst: 2 } } },
            retries: { attempts: 3, on: ['connect-failure', 'reset', 'gateway-error', '5xx', 'unavailable'], backoff: { base: '1ms' } },
            endpoints: [{ address: '127.0.0.1', port: catalogInbound, labels: { version: 'v1' } }],
          },
        },
        routes: { catalog: [{ match: { pathPrefix: '/' }, retryNonIdempotent: true }] },
      },
      dir,
    );
    const catalog = await procs.sidecar({ service: 'catalog', appPort, config, inboundPort: catalogInbound, identity: writeIdentity(dir, 'catalog', makeLeaf(ca, 'catalog')), extraArgs: ['--app-protocol', 'grpc'] });
    const web = await procs.sidecar({ service: 'web', appPort: webApp.port, config, identity: writeIdentity(dir, 'web', makeLeaf(ca, 'web')) });
    const ordersLeaf = makeLeaf(ca, 'orders');
    const Ctor = grpc.makeGenericClientConstructor(definition, 'Echo');
    const client = new Ctor(`127.0.0.1:${web.outboundPort}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': 'catalog' });
    const echo = (text: string) =>
      new Promise<{ err: grpc.ServiceError | null; res?: Buffer }>((resolve) =>
        (client as unknown as { Echo(r: Buffer, md: grpc.Metadata, o: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): void }).Echo(Buffer.from(text), new grpc.Metadata(), { deadline: Date.now() + 10_000 }, (err, res) => resolve({ err, res })),
      );
    try {
      for (const text of ['a', 'b']) expect((await echo(text)).res?.toString()).toBe(text);
      const { err } = await echo('c');
      expect(err?.code, err?.details).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(err?.details).toMatch(/^catalog admits 0\.01 requests per second per instance from web \(burst 2\)/);
      expect(err?.metadata.get('x-skein-reason')).toEqual(['rate-limited']);
      expect(Number(err?.metadata.get('retry-after')[0])).toBeGreaterThanOrEqual(99);
      expect(calls).toBe(2);
      // orders, calling with its own certificate, has a bucket of its own.
      expect(await directCall(catalogInbound, ordersLeaf)).toBe('0');
      expect(calls).toBe(3);
      expect(metric(await scrape(web), 'skein_retries_total')).toBe(0);
      const s = await scrape(catalog);
      expect(metric(s, 'skein_rate_limited_total', { source: 'web', destination: 'catalog' })).toBe(1);
      expect(metric(s, 'skein_requests_total', { direction: 'inbound', source: 'web', grpc_status: '8' })).toBe(1);
    } finally {
      client.close();
      server.forceShutdown();
    }
  });
});
