/**
 * Answers a sidecar makes itself to gRPC callers (no route, a dead subset, a refused caller,
 * an unreachable app): trailers-only with the reason's grpc-status, which is also what the
 * metrics and the control plane's stats count (they are HTTP 200, and were counted as
 * successes). Real grpc-js clients and servers through an mTLS sidecar pair.
 */
import * as grpc from '@grpc/grpc-js';
import { request as h1request } from 'node:http';
import { connect as h2connect } from 'node:http2';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { echoHandler, freePorts, makeCa, makeLeaf, Processes, startUpstream, tempDir, writeIdentity, writeTempConfig, type SpawnedSidecar, type TestUpstream } from '../support/index.js';
import { grpcFrame } from './grpc-fixture.js';
import { metric, scrape } from './resilience-fixture.js';

const identity = (b: Buffer): Buffer => b;
const definition: grpc.ServiceDefinition = {
  Echo: { path: '/test.Echo/Echo', requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity },
};

interface EchoClient extends grpc.Client {
  Echo(req: Buffer, md: grpc.Metadata, options: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): void;
}

describe('gRPC answers a sidecar makes itself', () => {
  const procs = new Processes();
  let server: grpc.Server;
  let webApp: TestUpstream;
  let web: SpawnedSidecar;
  let locked: SpawnedSidecar;
  let ghost: SpawnedSidecar;
  const clients = new Map<string, EchoClient>();
  let webLeaf: ReturnType<typeof makeLeaf>;

  beforeAll(async () => {
    server = new grpc.Server();
    server.addService(definition, {
      Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        const text = call.request.toString();
        if (text === 'app-error') {
          const md = new grpc.Metadata();
          md.set('x-app', 'yes');
          cb({ code: grpc.status.NOT_FOUND, details: 'no such thing', metadata: md });
        } else cb(null, Buffer.from(`echo:${text}`));
      },
    });
    const appPort = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))));
    webApp = await startUpstream(echoHandler('web-app'));
    const ca = makeCa();
    const dir = tempDir();
    // deadPort: v2's sidecar, gone; deadApp: the ghost sidecar's app.
    const [catalogInbound, lockedInbound, ghostInbound, deadPort, deadApp] = (await freePorts(5)) as [number, number, number, number, number];
    const grpcService = (port: number) => ({ protocol: 'grpc' as const, retries: { attempts: 0 }, endpoints: [{ address: '127.0.0.1', port, labels: { version: 'v1' } }] });
    const config = writeTempConfig(
      {
        services: {
          catalog: {
            protocol: 'grpc',
            retries: { attempts: 0 },
            subsets: { v1: { version: 'v1' }, v2: { version: 'v2' } },
            endpoints: [
              { address: '127.0.0.1', port: catalogInbound, labels: { version: 'v1' } },
              { address: '127.0.0.1', port: deadPort, labels: { version: 'v2' } },
            ],
          },
          locked: grpcService(lockedInbound),
          ghost: grpcService(ghostInbound),
        },
        routes: { catalog: [{ match: { headers: { 'x-canary': 'yes' } }, split: { v2: 100 } }, { match: { pathPrefix: '/test.' }, split: { v1: 100 } }] },
        intentions: { defaultAction: 'allow', rules: [{ source: 'web', destination: 'locked', action: 'deny' }] },
      },
      dir,
    );
    await procs.sidecar({ service: 'catalog', appPort, config, inboundPort: catalogInbound, identity: writeIdentity(dir, 'catalog', makeLeaf(ca, 'catalog')), extraArgs: ['--app-protocol', 'grpc'] });
    locked = await procs.sidecar({ service: 'locked', appPort, config, inboundPort: lockedInbound, identity: writeIdentity(dir, 'locked', makeLeaf(ca, 'locked')), extraArgs: ['--app-protocol', 'grpc'] });
    // The ghost's app is up for its sidecar's start (readiness waits on it), then gone.
    const ghostApp = new grpc.Server();
    ghostApp.addService(definition, { Echo: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.from('ghost')) });
    await new Promise<number>((resolve, reject) => ghostApp.bindAsync(`127.0.0.1:${deadApp}`, grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))));
    ghost = await procs.sidecar({ service: 'ghost', appPort: deadApp, config, inboundPort: ghostInbound, identity: writeIdentity(dir, 'ghost', makeLeaf(ca, 'ghost')), extraArgs: ['--app-protocol', 'grpc'] });
    webLeaf = makeLeaf(ca, 'web');
    web = await procs.sidecar({ service: 'web', appPort: webApp.port, config, identity: writeIdentity(dir, 'web', webLeaf) });
    ghostApp.forceShutdown();
  });

  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') console.log(`--- web ---\n${web?.output()}\n--- locked ---\n${locked?.output()}\n--- ghost ---\n${ghost?.output()}`);
  });

  afterAll(async () => {
    for (const c of clients.values()) c.close();
    await procs.killAll();
    server?.forceShutdown();
    await webApp?.close();
  });

  const call = (authority: string, text: string, md = new grpc.Metadata(), deadlineMs = 10_000) => {
    let client = clients.get(authority);
    if (client === undefined) {
      const Ctor = grpc.makeGenericClientConstructor(definition, 'Echo');
      client = new Ctor(`127.0.0.1:${web.outboundPort}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': authority }) as unknown as EchoClient;
      clients.set(authority, client);
    }
    const c = client;
    return new Promise<{ err: grpc.ServiceError | null; res?: Buffer }>((resolve) => c.Echo(Buffer.from(text), md, { deadline: Date.now() + deadlineMs }, (err, res) => resolve({ err, res })));
  };
  const grpcCount = (s: Map<string, number>, labels: Record<string, string>) => metric(s, 'skein_requests_total', labels);
  // On a mismatch, says what the caller got: the details and the sidecar's reason.
  const expectCode = ({ err }: { err: grpc.ServiceError | null }, code: grpc.status) =>
    expect(err?.code, `${err?.details} (x-skein-reason ${String(err?.metadata.get('x-skein-reason'))})`).toBe(code);

  it('counts a dead subset, no route, a denied caller and an unreachable app by their grpc-status, in both directions', async () => {
    const canary = new grpc.Metadata();
    canary.set('x-canary', 'yes');
    for (let i = 0; i < 3; i++) expectCode(await call('catalog', 'hi', canary), grpc.status.UNAVAILABLE);
    expectCode(await call('nosuch', 'hi'), grpc.status.UNIMPLEMENTED);
    expectCode(await call('locked', 'hi'), grpc.status.PERMISSION_DENIED);
    expectCode(await call('ghost', 'hi'), grpc.status.UNAVAILABLE);
    expect((await call('catalog', 'hi')).res?.toString()).toBe('echo:hi');

    const s = await scrape(web);
    expect(grpcCount(s, { direction: 'outbound', destination: 'catalog', destination_subset: 'v2', code: '200', grpc_status: '14' })).toBe(3);
    expect(grpcCount(s, { direction: 'outbound', destination: 'catalog', destination_subset: 'v2', grpc_status: '' })).toBe(0);
    expect(grpcCount(s, { direction: 'outbound', destination: 'catalog', destination_subset: 'v1', grpc_status: '0' })).toBe(1);
    expect(grpcCount(s, { direction: 'outbound', grpc_status: '12' })).toBe(1);
    expect(grpcCount(s, { direction: 'outbound', destination: 'locked', grpc_status: '7' })).toBe(1);
    expect(grpcCount(s, { direction: 'outbound', destination: 'ghost', grpc_status: '14' })).toBe(1);
    expect(grpcCount(s, { direction: 'outbound', grpc_status: '' })).toBe(0);
    // The peers' own answers, inbound.
    expect(grpcCount(await scrape(locked), { direction: 'inbound', grpc_status: '7' })).toBe(1);
    expect(grpcCount(await scrape(ghost), { direction: 'inbound', grpc_status: '14' })).toBe(1);
  });

  it("relays trailers-only answers as trailers-only: the app's metadata and a peer sidecar's x-skein-reason reach err.metadata", async () => {
    const app = await call('catalog', 'app-error');
    expect(app.err?.code).toBe(grpc.status.NOT_FOUND);
    expect(app.err?.details).toBe('no such thing');
    expect(app.err?.metadata.get('x-app')).toEqual(['yes']);
    // The peers' own answers (refused caller, unreachable app), and this sidecar's (a dead subset, no route).
    const canary = new grpc.Metadata();
    canary.set('x-canary', 'yes');
    for (const [authority, md, code, reason] of [
      ['locked', new grpc.Metadata(), grpc.status.PERMISSION_DENIED, 'denied'],
      ['ghost', new grpc.Metadata(), grpc.status.UNAVAILABLE, 'upstream-connect-failure'],
      ['catalog', canary, grpc.status.UNAVAILABLE, 'upstream-connect-failure'],
      ['nosuch', new grpc.Metadata(), grpc.status.UNIMPLEMENTED, 'no-route'],
    ] as const) {
      const { err } = await call(authority, 'hi', md);
      expect(err?.code, authority).toBe(code);
      expect(err?.metadata.get('x-skein-reason'), authority).toEqual([reason]);
    }
  });

  it('answers the first call of each new connection from a denied caller with its status, not a bare reset', async () => {
    // A session's first stream meets the inbound's acknowledgement of the caller's SETTINGS
    // still on its way (a TLS write completes on a later turn): the answer must not lose its
    // place to the reset that stops the caller's body, whose END_STREAM comes in a later write.
    const firstCall = async (): Promise<string> => {
      const session = h2connect(`https://127.0.0.1:${locked.inboundPort}`, { ca: webLeaf.caPem, key: webLeaf.keyPem, cert: webLeaf.certPem, checkServerIdentity: () => undefined });
      session.on('error', () => {});
      try {
        // As a sidecar calls: once the server's SETTINGS are in.
        await new Promise((resolve) => session.once('remoteSettings', resolve));
        const stream = session.request({ ':method': 'POST', ':path': '/test.Echo/Echo', ':authority': 'locked', 'content-type': 'application/grpc', te: 'trailers' });
        stream.on('error', () => {});
        const status = new Promise<string>((resolve) => {
          stream.on('response', (h) => resolve(String(h['grpc-status'])));
          stream.on('close', () => resolve(`closed with ${stream.rstCode} and no answer`));
        });
        stream.write(grpcFrame('hi'));
        setImmediate(() => stream.end());
        return await status;
      } finally {
        session.destroy();
      }
    };
    // Four callers at a time, 100 sessions in all (on the old code about a third lost their answer).
    const statuses: string[] = [];
    for (let i = 0; i < 25; i++) statuses.push(...(await Promise.all([firstCall(), firstCall(), firstCall(), firstCall()])));
    expect(statuses.filter((s) => s !== '7')).toEqual([]);
  });

  it('answers gRPC-Web callers with their own content-type, over HTTP/1.1 and HTTP/2 (a gRPC-Web client refuses application/grpc)', async () => {
    // Until 2026-12-07 these answers said `application/grpc`: connect-web's gRPC-Web transport
    // failed such a call `unsupported content type application/grpc` (UNKNOWN), not with its status.
    const overH1 = (authority: string, contentType: string) =>
      new Promise<{ type: unknown; status: unknown; reason: unknown }>((resolve, reject) => {
        const req = h1request({ host: '127.0.0.1', port: web.outboundPort, method: 'POST', path: '/test.Echo/Echo', headers: { host: authority, 'content-type': contentType, 'x-grpc-web': '1' } }, (res) => {
          res.resume();
          res.on('end', () => resolve({ type: res.headers['content-type'], status: res.headers['grpc-status'], reason: res.headers['x-skein-reason'] }));
        });
        req.on('error', reject);
        req.end(grpcFrame('hi'));
      });
    const overH2 = (authority: string, contentType: string) =>
      new Promise<{ type: unknown; status: unknown; reason: unknown }>((resolve, reject) => {
        const session = h2connect(`http://127.0.0.1:${web.outboundPort}`);
        session.on('error', reject);
        const stream = session.request({ ':method': 'POST', ':path': '/test.Echo/Echo', ':authority': authority, 'content-type': contentType, 'x-grpc-web': '1' });
        stream.on('response', (h) => {
          session.close();
          resolve({ type: h['content-type'], status: h['grpc-status'], reason: h['x-skein-reason'] });
        });
        stream.on('error', reject);
        stream.resume();
        stream.end(grpcFrame('hi'));
      });
    for (const type of ['application/grpc-web+proto', 'application/grpc-web-text']) {
      // This sidecar's own answer, and a peer sidecar's (an intention denies web), relayed.
      expect(await overH1('nosuch', type)).toEqual({ type, status: '12', reason: 'no-route' });
      expect(await overH1('locked', type)).toEqual({ type, status: '7', reason: 'denied' });
      expect(await overH2('nosuch', type)).toEqual({ type, status: '12', reason: 'no-route' });
      expect(await overH2('locked', type)).toEqual({ type, status: '7', reason: 'denied' });
    }
    // A gRPC caller's stay application/grpc.
    expect(await overH2('nosuch', 'application/grpc')).toEqual({ type: 'application/grpc', status: '12', reason: 'no-route' });
  });
});
