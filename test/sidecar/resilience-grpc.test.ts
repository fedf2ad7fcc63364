/**
 * gRPC resilience over a real sidecar pair (mTLS, HTTP/2 between sidecars): retries on
 * `unavailable` (grpc-status 14, which the default `gateway-error` condition covers for gRPC,
 * SPEC §4), which the idempotency rule allows only when the route opts in with
 * `retryNonIdempotent`, since every gRPC call is a POST; retry conditions reading grpc-status
 * as the metrics do; and a half-open circuit whose trial is a server stream.
 */
import * as grpc from '@grpc/grpc-js';
import { connect as h2connect, createServer as h2server, type Http2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { echoHandler, freePorts, makeCa, makeLeaf, Processes, startUpstream, tempDir, waitUntil, writeIdentity, writeTempConfig, type SpawnedSidecar, type TestUpstream } from '../support/index.js';
import { echoDefinition, grpcClient, grpcPairTeardown, startGrpcSidecarPair } from './grpc-fixture.js';
import { metric, scrape, startOutbound, type Outbound } from './resilience-fixture.js';

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

describe('gRPC retry conditions', () => {
  const procs = new Processes();
  let app: Http2Server;
  let web: Outbound;
  /** The tries each call's app saw, by path. */
  const tries = new Map<string, string[]>();

  beforeAll(async () => {
    // A raw HTTP/2 gRPC app: /odd.Echo/<form>-<status> answers its first try with that
    // grpc-status, trailers-only (`head`) or after a head without one (`trailers`), and its
    // retries with OK.
    app = h2server();
    app.on('stream', (stream, headers) => {
      const path = String(headers[':path']);
      const seen = tries.get(path) ?? [];
      tries.set(path, [...seen, String(headers['x-skein-attempt'])]);
      const [form, status] = path.split('/').pop()!.split(/-(.*)/) as [string, string];
      const grpcStatus = seen.length === 0 ? status : '0';
      stream.resume();
      stream.on('end', () => {
        if (form === 'head') {
          stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': grpcStatus }, { endStream: true });
          return;
        }
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': grpcStatus }));
        stream.end();
      });
    });
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    const endpoint = { address: '127.0.0.1', port: (app.address() as AddressInfo).port, labels: { version: 'v1' } };
    const retries = { attempts: 2, on: ['unavailable' as const], backoff: { base: '1ms', max: '2ms' } };
    web = await startOutbound(procs, {
      version: '1',
      services: { catalog: { protocol: 'grpc', retries, endpoints: [endpoint] } },
      routes: { catalog: [{ match: { pathPrefix: '/' }, retryNonIdempotent: true }] },
    });
  });

  afterAll(async () => {
    await procs.killAll();
    await new Promise((resolve) => app?.close(resolve));
  });

  /** One unary call on a fresh HTTP/2 connection: the grpc-status its caller got, from the head or the trailers. */
  const call = (path: string): Promise<string | undefined> =>
    new Promise((resolve, reject) => {
      const session = h2connect(web.sidecar.outboundUrl);
      session.on('error', reject);
      const stream = session.request({ ':method': 'POST', ':path': path, ':authority': 'catalog', 'content-type': 'application/grpc', te: 'trailers' });
      let status: string | undefined;
      stream.on('response', (h) => (status = h['grpc-status'] as string | undefined));
      stream.on('trailers', (t) => (status = t['grpc-status'] as string | undefined));
      stream.on('close', () => {
        session.close();
        resolve(status);
      });
      stream.resume();
      stream.end(Buffer.alloc(5));
    });

  it('read grpc-status as the metrics do: a value that is no gRPC code is UNKNOWN, which no condition retries, where Number() read 14.0 as UNAVAILABLE', async () => {
    for (const form of ['head', 'trailers']) {
      // 14 is UNAVAILABLE: retried, and the retry answers OK.
      expect(await call(`/odd.Echo/${form}-14`)).toBe('0');
      expect(tries.get(`/odd.Echo/${form}-14`)).toEqual(['1', '2']);
      // 14.0 and abc are no gRPC code (1*DIGIT, 0-16): UNKNOWN, relayed as they came, not retried.
      for (const status of ['14.0', 'abc']) {
        expect(await call(`/odd.Echo/${form}-${status}`)).toBe(status);
        expect(tries.get(`/odd.Echo/${form}-${status}`), `${form}-${status}`).toEqual(['1']);
      }
    }
    const s = await scrape(web.sidecar);
    expect(metric(s, 'skein_retries_total', { destination: 'catalog', reason: 'unavailable' })).toBe(2);
    expect(metric(s, 'skein_retries_total', { destination: 'catalog' })).toBe(2);
    expect(metric(s, 'skein_requests_total', { direction: 'outbound', destination: 'catalog', grpc_status: '2' })).toBe(4);
    expect(metric(s, 'skein_requests_total', { direction: 'outbound', destination: 'catalog', grpc_status: '0' })).toBe(2);
  });
});

/**
 * An app that breaks off after its head (held: the route sets `retryNonIdempotent`) without any
 * grpc-status: a reset with an error code, a reset with NO_ERROR, or a bare END_STREAM. Nothing
 * of the answer has reached the caller, and each is the reset it is: retried under `reset`,
 * answered UNAVAILABLE under `unavailable` alone. Before, the last two went out with the held
 * head and then `14` in the trailers, never retried, where the first was retried.
 */
describe('gRPC retries of an answer broken off after its held head', () => {
  const procs = new Processes();
  let app: Http2Server;
  let web: Outbound;
  /** The tries each call's app saw, by path. */
  const tries = new Map<string, number>();
  const BREAKS = ['Internal', 'NoError', 'Bare'];

  beforeAll(async () => {
    // /<service>.Echo/<break>: the first try gets a head without grpc-status, then the break; a retry, a whole OK answer.
    app = h2server();
    app.on('stream', (stream, headers) => {
      stream.on('error', () => {});
      const path = String(headers[':path']);
      const n = (tries.get(path) ?? 0) + 1;
      tries.set(path, n);
      stream.resume();
      stream.on('end', () => {
        if (n > 1) {
          stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
          stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
          stream.end(Buffer.alloc(5));
          return;
        }
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
        const how = path.split('/').pop();
        setTimeout(() => (how === 'Internal' ? stream.destroy(new Error('app failed')) : how === 'NoError' ? stream.destroy() : stream.end()), 20);
      });
    });
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    const endpoints = [{ address: '127.0.0.1', port: (app.address() as AddressInfo).port }];
    const backoff = { base: '1ms', max: '2ms' };
    web = await startOutbound(procs, {
      version: '1',
      services: {
        catalog: { protocol: 'grpc', retries: { attempts: 2, on: ['reset'], backoff }, endpoints },
        other: { protocol: 'grpc', retries: { attempts: 2, on: ['unavailable'], backoff }, endpoints },
      },
      routes: { catalog: [{ match: { pathPrefix: '/' }, retryNonIdempotent: true }], other: [{ match: { pathPrefix: '/' }, retryNonIdempotent: true }] },
    });
  });

  afterAll(async () => {
    await procs.killAll();
    await new Promise((resolve) => app?.close(resolve));
  });

  /** One unary call: the grpc-status its caller got (head or trailers) and the grpc-message with it. */
  const call = (authority: string, path: string): Promise<{ status?: string; message?: string }> =>
    new Promise((resolve, reject) => {
      const session = h2connect(web.sidecar.outboundUrl);
      session.on('error', reject);
      const stream = session.request({ ':method': 'POST', ':path': path, ':authority': authority, 'content-type': 'application/grpc', te: 'trailers' });
      const out: { status?: string; message?: string } = {};
      const read = (h: Record<string, unknown>): void => {
        if (h['grpc-status'] === undefined) return;
        out.status = h['grpc-status'] as string;
        out.message = h['grpc-message'] as string | undefined;
      };
      stream.on('response', read);
      stream.on('trailers', read);
      stream.on('close', () => {
        session.close();
        resolve(out);
      });
      stream.resume();
      stream.end(Buffer.alloc(5));
    });

  it('under reset: each is retried, and the retry answers OK', async () => {
    for (const how of BREAKS) {
      const path = `/catalog.Echo/${how}`;
      expect(await call('catalog', path), how).toEqual({ status: '0', message: undefined });
      expect(tries.get(path), how).toBe(2);
    }
    const s = await scrape(web.sidecar);
    expect(metric(s, 'skein_retries_total', { destination: 'catalog', reason: 'reset' })).toBe(3);
    expect(metric(s, 'skein_requests_total', { direction: 'outbound', destination: 'catalog', grpc_status: '0' })).toBe(3);
  });

  it('under unavailable alone: none is retried, each answered UNAVAILABLE, counted once as 14', async () => {
    for (const how of BREAKS) {
      const path = `/other.Echo/${how}`;
      const got = await call('other', path);
      expect(got.status, how).toBe('14');
      if (how !== 'Internal') expect(got.message, how).toMatch(/^other at 127\.0\.0\.1:\d+ broke off its answer: it ended without a grpc-status$/);
      expect(tries.get(path), how).toBe(1);
    }
    const s = await scrape(web.sidecar);
    expect(metric(s, 'skein_retries_total', { destination: 'other' })).toBe(0);
    expect(metric(s, 'skein_requests_total', { direction: 'outbound', destination: 'other' })).toBe(3);
    expect(metric(s, 'skein_requests_total', { direction: 'outbound', destination: 'other', grpc_status: '14' })).toBe(3);
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
