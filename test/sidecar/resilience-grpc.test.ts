/**
 * gRPC resilience over a real sidecar pair (mTLS, HTTP/2 between sidecars): retries on
 * `unavailable` (grpc-status 14, which the default `gateway-error` condition covers for gRPC,
 * SPEC §4), which the idempotency rule allows only when the route opts in with
 * `retryNonIdempotent`, since every gRPC call is a POST; and a half-open circuit whose trial
 * is a server stream.
 */
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { echoHandler, freePorts, makeCa, makeLeaf, Processes, startUpstream, tempDir, waitUntil, writeIdentity, writeTempConfig, type SpawnedSidecar, type TestUpstream } from '../support/index.js';
import { echoDefinition, grpcClient, grpcPairTeardown, startGrpcSidecarPair } from './grpc-fixture.js';
import { metric, scrape } from './resilience-fixture.js';

const identity = (b: Buffer): Buffer => b;
const definition: grpc.ServiceDefinition = {
  Echo: { path: '/test.Echo/Echo', requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity },
};

interface EchoClient extends grpc.Client {
  Echo(req: Buffer, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): void;
}

describe('gRPC retries on unavailable', () => {
  const procs = new Processes();
  let server: grpc.Server;
  let webApp: TestUpstream;
  let web: SpawnedSidecar;
  let calls = 0;
  /** Attempt numbers the app saw, in order. */
  const attempts: string[] = [];
  let client: EchoClient;

  beforeAll(async () => {
    server = new grpc.Server();
    server.addService(definition, {
      // Flaps: every odd call fails with UNAVAILABLE (a trailers-only answer).
      Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        attempts.push(String(call.metadata.get('x-skein-attempt')[0]));
        if (++calls % 2 === 1) cb({ code: grpc.status.UNAVAILABLE, details: 'flapping' });
        else cb(null, Buffer.from(`echo:${call.request.toString()}`));
      },
    });
    const appPort = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))));
    webApp = await startUpstream(echoHandler('web-app'));
    const ca = makeCa();
    const dir = tempDir();
    const [catalogInbound] = (await freePorts(1)) as [number];
    // The default `on` (connect-failure, reset, gateway-error).
    const retries = { attempts: 2, backoff: { base: '1ms', max: '2ms' } };
    const config = writeTempConfig(
      {
        services: { catalog: { protocol: 'grpc', retries, endpoints: [{ address: '127.0.0.1', port: catalogInbound, labels: { version: 'v1' } }] } },
        routes: {
          catalog: [
            { match: { path: '/test.Echo/Echo', headers: { 'x-opt-in': 'yes' } }, retryNonIdempotent: true },
            { match: { pathPrefix: '/' } },
          ],
        },
      },
      dir,
    );
    await procs.sidecar({ service: 'catalog', appPort, config, inboundPort: catalogInbound, identity: writeIdentity(dir, 'catalog', makeLeaf(ca, 'catalog')), extraArgs: ['--app-protocol', 'grpc'] });
    web = await procs.sidecar({ service: 'web', appPort: webApp.port, config, identity: writeIdentity(dir, 'web', makeLeaf(ca, 'web')) });
    const Ctor = grpc.makeGenericClientConstructor(definition, 'Echo');
    client = new Ctor(`127.0.0.1:${web.outboundPort}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': 'catalog' }) as unknown as EchoClient;
  });

  afterAll(async () => {
    client?.close();
    await procs.killAll();
    server?.forceShutdown();
    await webApp?.close();
  });

  const echo = (text: string, optIn: boolean) => {
    const md = new grpc.Metadata();
    if (optIn) md.set('x-opt-in', 'yes');
    return new Promise<{ err: grpc.ServiceError | null; res?: Buffer }>((resolve) => client.Echo(Buffer.from(text), md, (err, res) => resolve({ err, res })));
  };

  it('does not replay gRPC calls (POSTs) that reached the app, and labels their grpc-status', async () => {
    calls = 0;
    attempts.length = 0;
    const { err } = await echo('once', false);
    expect(err?.code).toBe(grpc.status.UNAVAILABLE);
    const second = await echo('twice', false);
    expect(second.err).toBeNull(); // the app flaps: every other call succeeds
    const third = await echo('thrice', false);
    expect(third.err?.code).toBe(grpc.status.UNAVAILABLE);
    expect(third.err?.details).toBe('flapping');
    expect(attempts).toEqual(['1', '1', '1']);
    const s = await scrape(web);
    expect(metric(s, 'skein_requests_total', { direction: 'outbound', destination: 'catalog', grpc_status: '14' })).toBe(2);
    expect(metric(s, 'skein_requests_total', { direction: 'outbound', destination: 'catalog', grpc_status: '0' })).toBe(1);
    expect(metric(s, 'skein_retries_total', { destination: 'catalog' })).toBe(0);
  });

  it('retries UNAVAILABLE when the route allows replaying', async () => {
    calls = 0;
    attempts.length = 0;
    const before = metric(await scrape(web), 'skein_retries_total', { destination: 'catalog', reason: 'unavailable' });
    for (let i = 0; i < 5; i++) {
      const { err, res } = await echo(`call${i}`, true);
      expect(err).toBeNull();
      expect(res!.toString()).toBe(`echo:call${i}`); // the replayed body is intact
    }
    // Every call: UNAVAILABLE, then a replay that succeeds; the app sees the caller's try number.
    expect(attempts).toEqual(Array.from({ length: 10 }, (_, i) => String((i % 2) + 1)));
    expect(metric(await scrape(web), 'skein_retries_total', { destination: 'catalog', reason: 'unavailable' }) - before).toBe(5);
  });

  it('does not replay an opted-in call whose body outgrew the 64 KiB replay buffer', async () => {
    calls = 0;
    attempts.length = 0;
    const big = 'x'.repeat(100 * 1024);
    const { err } = await echo(big, true);
    expect(err?.code).toBe(grpc.status.UNAVAILABLE);
    expect(attempts).toEqual(['1']);
    const next = await echo(big, true);
    expect(next.res?.toString()).toBe(`echo:${big}`);
  });
});

describe('gRPC circuit breaker', () => {
  const procs = new Processes();
  const state: { server?: grpc.Server; client?: grpc.Client; webApp?: TestUpstream; web?: SpawnedSidecar; catalog?: SpawnedSidecar } = {};
  grpcPairTeardown(procs, () => state);
  let failing = true;
  /** Server streams that have sent their first message and wait for the test to end them. */
  const streams: grpc.ServerWritableStream<Buffer, Buffer>[] = [];

  beforeAll(async () => {
    const server = (state.server = new grpc.Server());
    server.addService(echoDefinition, {
      Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        if (failing) cb({ code: grpc.status.UNAVAILABLE, details: 'down' });
        else cb(null, call.request);
      },
      Count: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
        call.write(Buffer.from('first'));
        streams.push(call);
      },
    });
    Object.assign(state, await startGrpcSidecarPair(procs, server, { timeout: '0s', retries: { attempts: 0 }, circuitBreaker: { volumeThreshold: 3, errorThresholdPercentage: 50, resetTimeout: '1s' }, outlierDetection: { consecutiveErrors: 1000 } }));
    state.client = grpcClient(echoDefinition, state.web!.outboundPort);
  });

  it('closes as soon as the half-open trial, a server stream, sends its first message', async () => {
    const client = state.client as grpc.Client & {
      Echo(req: Buffer, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): void;
      Count(req: Buffer): grpc.ClientReadableStream<Buffer>;
    };
    const echo = () => new Promise<grpc.ServiceError | null>((resolve) => client.Echo(Buffer.from('hi'), (err) => resolve(err)));
    const circuit = async (): Promise<number> => metric(await scrape(state.web!), 'skein_circuit_state', { destination: 'catalog' });
    for (let i = 0; i < 3; i++) expect((await echo())?.details).toBe('down');
    expect((await echo())?.metadata.get('x-skein-reason')).toEqual(['circuit-open']);
    failing = false;
    await waitUntil(async () => (await circuit()) === 2, { timeoutMs: 5000, what: 'the circuit to half-open' });

    // The trial is the stream: its first message closes the circuit while the stream goes on.
    const stream = client.Count(Buffer.from('go'));
    const ended = new Promise<void>((resolve) => stream.on('status', () => resolve()));
    stream.on('error', () => undefined);
    await new Promise((resolve) => stream.once('data', resolve));
    expect(await echo()).toBeNull();
    expect(await circuit()).toBe(0);

    streams[0]!.end();
    await ended;
  });
});
