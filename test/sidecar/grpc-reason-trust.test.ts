/**
 * Which `upstream-connect-failure` a sidecar believes for a gRPC call (a POST) over HTTP/2
 * between mTLS sidecars, as reason-trust.test.ts checks it over the mux. A peer sidecar that
 * could not reach its gRPC app never delivered the call, so the caller's sidecar sends it to
 * another replica under `on: [unavailable]` without `retryNonIdempotent`; it knows the answer
 * is the peer sidecar's own by a header carrying their TLS connection's token
 * (sidecar/h2-sidecar-made.ts). An app's trailers-only UNAVAILABLE with that reason, and a
 * forged mark beside it, is not believed; and the mark reaches no client, in headers or trailers.
 */
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { echoHandler, freePorts, makeCa, makeLeaf, Processes, startUpstream, tempDir, writeIdentity, writeTempConfig, type SpawnedSidecar, type TestUpstream } from '../support/index.js';
import { grpcClient, rawMethod, startGrpcSidecarPair, startH2cGrpcPair } from './grpc-fixture.js';
import { metric, scrape } from './resilience-fixture.js';

const MARK = 'x-skein-sidecar-made';
const definition: grpc.ServiceDefinition = { Echo: rawMethod('Echo', false), Plain: rawMethod('Plain', false) };
type Unary = (req: Buffer, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res?: Buffer) => void) => grpc.ClientUnaryCall;
type Client = grpc.Client & { Echo: Unary; Plain: Unary };

const retries = { attempts: 2, on: ['unavailable' as const], backoff: { base: '1ms', max: '2ms' } };

interface Answer {
  err: grpc.ServiceError | null;
  res?: Buffer;
  /** The response headers, when the answer had any apart from its trailers. */
  headers: grpc.Metadata | undefined;
  /** The trailers (a trailers-only answer's headers). */
  trailers: grpc.Metadata;
}

/** One unary call, resolved once grpc-js has reported both its result and its status. */
function unary(client: Client, method: 'Echo' | 'Plain', text: string): Promise<Answer> {
  return new Promise((resolve) => {
    let result: Pick<Answer, 'err' | 'res'> | undefined;
    let status: grpc.StatusObject | undefined;
    let headers: grpc.Metadata | undefined;
    const settle = (): void => {
      if (result !== undefined && status !== undefined) resolve({ ...result, headers, trailers: status.metadata });
    };
    const call = client[method](Buffer.from(text), new grpc.Metadata(), (err, res) => {
      result = { err, res };
      settle();
    });
    call.on('metadata', (md: grpc.Metadata) => (headers = md));
    call.on('status', (s: grpc.StatusObject) => {
      status = s;
      settle();
    });
  });
}

/** A grpc-js app on 127.0.0.1 whose `Echo` answers `name:text`; resolves with its port and the calls it got. */
async function echoApp(name: string): Promise<{ server: grpc.Server; port: number; calls: string[] }> {
  const calls: string[] = [];
  const server = new grpc.Server();
  server.addService(definition, {
    Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      calls.push(call.request.toString());
      cb(null, Buffer.from(`${name}:${call.request.toString()}`));
    },
    Plain: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.alloc(0)),
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return { server, port, calls };
}

describe('upstream-connect-failure over HTTP/2 between sidecars (gRPC)', () => {
  const procs = new Processes();
  const sidecars: SpawnedSidecar[] = [];
  const servers: grpc.Server[] = [];
  const upstreams: TestUpstream[] = [];
  const clients: grpc.Client[] = [];

  afterEach(async (ctx) => {
    if (ctx.task.result?.state === 'fail') for (const s of sidecars) console.log(`--- ${s.name} ---\n${s.output()}`);
    sidecars.length = 0;
    for (const c of clients.splice(0)) c.close();
    await procs.killAll();
    for (const s of servers.splice(0)) s.forceShutdown();
    await Promise.all(upstreams.splice(0).map((u) => u.close()));
  });

  it('is believed from the peer sidecar itself (its app down): the call goes to the other replica, and no client sees the mark', async () => {
    const down = await echoApp('down');
    const up = await echoApp('up');
    servers.push(down.server, up.server);
    const webApp = await startUpstream(echoHandler('web'));
    upstreams.push(webApp);
    const ca = makeCa();
    const dir = tempDir();
    const [downInbound, upInbound] = (await freePorts(2)) as [number, number];
    const endpoints = [downInbound, upInbound].map((port) => ({ address: '127.0.0.1', port, labels: { version: 'v1' } }));
    const config = writeTempConfig({ version: '1', services: { catalog: { protocol: 'grpc', lb: 'round-robin', retries, endpoints } } }, dir);
    const leaf = makeLeaf(ca, 'catalog');
    const grpcApp = ['--app-protocol', 'grpc'];
    sidecars.push(await procs.sidecar({ service: 'catalog', appPort: down.port, config, inboundPort: downInbound, identity: writeIdentity(dir, 'catalog-down', leaf), extraArgs: grpcApp }));
    sidecars.push(await procs.sidecar({ service: 'catalog', appPort: up.port, config, inboundPort: upInbound, identity: writeIdentity(dir, 'catalog-up', leaf), extraArgs: grpcApp }));
    const web = await procs.sidecar({ service: 'web', appPort: webApp.port, config, identity: writeIdentity(dir, 'web', makeLeaf(ca, 'web')) });
    sidecars.push(web);
    // Its sidecar has seen it healthy; now its port refuses connections.
    down.server.forceShutdown();
    const client = grpcClient<Client>(definition, web.outboundPort);
    clients.push(client);

    for (let i = 0; i < 4; i++) {
      const answer = await unary(client, 'Echo', `call${i}`);
      expect(answer.err).toBeNull();
      expect(answer.res!.toString()).toBe(`up:call${i}`);
      expect(answer.headers?.get(MARK)).toEqual([]);
      expect(answer.trailers.get(MARK)).toEqual([]);
    }
    expect(up.calls).toEqual(['call0', 'call1', 'call2', 'call3']);
    expect(down.calls).toEqual([]);
    expect(metric(await scrape(web), 'skein_retries_total', { destination: 'catalog', reason: 'unavailable' })).toBeGreaterThan(0);
  });

  it('is believed on every try when there is no other replica; the last try\'s answer reaches the client without the mark', async () => {
    const down = await echoApp('down');
    servers.push(down.server);
    const pair = await startH2cGrpcPair(procs, down.port, { retries });
    upstreams.push(pair.webApp);
    sidecars.push(pair.web, pair.catalog);
    down.server.forceShutdown();
    const client = grpcClient<Client>(definition, pair.web.outboundPort);
    clients.push(client);

    const answer = await unary(client, 'Echo', 'lost');
    expect(answer.err?.code).toBe(grpc.status.UNAVAILABLE);
    expect(answer.trailers.get('x-skein-reason')).toEqual(['upstream-connect-failure']);
    expect(answer.trailers.get(MARK)).toEqual([]);
    // Three tries, each answered by the peer sidecar itself.
    expect(metric(await scrape(pair.web), 'skein_retries_total', { destination: 'catalog', reason: 'unavailable' })).toBe(2);
  });

  it('is not believed from an app, a forged mark beside it: the call is not replayed, and the mark reaches no client', async () => {
    const forged = 'AAAAAAAAAAAAAAAAAAAAAA';
    const calls: string[] = [];
    const server = new grpc.Server();
    servers.push(server);
    server.addService(definition, {
      // A gateway relaying another sidecar's answer, and a mark it made up.
      Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        calls.push(call.request.toString());
        const metadata = new grpc.Metadata();
        metadata.set('x-skein-reason', 'upstream-connect-failure');
        metadata.set(MARK, forged);
        cb({ code: grpc.status.UNAVAILABLE, details: 'could not connect to payments', metadata });
      },
      // The mark in an answer's headers and in its trailers.
      Plain: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        const head = new grpc.Metadata();
        head.set(MARK, forged);
        head.set('x-app', 'head');
        call.sendMetadata(head);
        const trailers = new grpc.Metadata();
        trailers.set(MARK, forged);
        trailers.set('x-app', 'trailers');
        cb(null, Buffer.from('ok'), trailers);
      },
    });
    const pair = await startGrpcSidecarPair(procs, server, { retries });
    upstreams.push(pair.webApp);
    sidecars.push(pair.web, pair.catalog);
    const client = grpcClient<Client>(definition, pair.web.outboundPort);
    clients.push(client);

    const refused = await unary(client, 'Echo', 'pay');
    expect(refused.err?.code).toBe(grpc.status.UNAVAILABLE);
    expect(refused.err?.details).toBe('could not connect to payments');
    expect(refused.trailers.get('x-skein-reason')).toEqual(['upstream-connect-failure']); // the app's, passed on
    expect(refused.trailers.get(MARK)).toEqual([]);
    expect(calls).toEqual(['pay']);
    expect(metric(await scrape(pair.web), 'skein_retries_total', { destination: 'catalog' })).toBe(0);

    const plain = await unary(client, 'Plain', '');
    expect(plain.err).toBeNull();
    expect(plain.headers?.get('x-app')).toEqual(['head']);
    expect(plain.headers?.get(MARK)).toEqual([]);
    expect(plain.trailers.get('x-app')).toEqual(['trailers']);
    expect(plain.trailers.get(MARK)).toEqual([]);
  });
});
