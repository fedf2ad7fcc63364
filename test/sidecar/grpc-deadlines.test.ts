/**
 * gRPC calls against the default per-try timeout (1 s) and long deadlines, through an mTLS
 * sidecar pair with real grpc-js clients and servers. grpc-js sends response headers only
 * with the first message, so a try's "wait for headers" is the app's whole think time: the
 * per-try timeout, there so that another try can follow, must not cut a call no retry could
 * follow (every gRPC call on a route without `retryNonIdempotent`); its deadline bounds it.
 */
import { once } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { beforeAll, describe, expect, it } from 'vitest';
import { Processes, type SpawnedSidecar, type TestUpstream } from '../support/index.js';
import { echoDefinition, grpcClient, grpcPairTeardown, startGrpcSidecarPair } from './grpc-fixture.js';
import { metric, scrape } from './resilience-fixture.js';


interface EchoClient extends grpc.Client {
  Echo(req: Buffer, md: grpc.Metadata, options: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): void;
  Count(req: Buffer, md: grpc.Metadata, options: grpc.CallOptions): grpc.ClientReadableStream<Buffer>;
}

/** The request's text: "<delay ms>" before answering. */
const delayOf = (req: Buffer): number => Number(req.toString()) || 0;

describe('gRPC deadlines and the per-try timeout', () => {
  const procs = new Processes();
  let server: grpc.Server;
  let webApp: TestUpstream;
  let web: SpawnedSidecar;
  let catalog: SpawnedSidecar;
  let client: EchoClient;
  let echoCalls = 0;
  /** The deadline the app saw on its latest Echo call (from the grpc-timeout the sidecar sent). */
  let appDeadline: grpc.Deadline | undefined;

  beforeAll(async () => {
    server = new grpc.Server();
    server.addService(echoDefinition, {
      Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        echoCalls++;
        appDeadline = call.getDeadline();
        setTimeout(() => cb(null, Buffer.from(`late:${call.request.toString()}`)), delayOf(call.request));
      },
      Count: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
        setTimeout(() => {
          for (let i = 0; i < 3; i++) call.write(Buffer.from(`n${i}`));
          call.end();
        }, delayOf(call.request));
      },
    });
    // The default policy: 3 s timeout (replaced by a call's grpc-timeout), 1 s per try, 2 retries.
    ({ webApp, web, catalog } = await startGrpcSidecarPair(procs, server, { outlierDetection: { consecutiveErrors: 2 } }));
    client = grpcClient<EchoClient>(echoDefinition, web.outboundPort);
  });

  grpcPairTeardown(procs, () => ({ server, client, webApp, web, catalog }));

  const echo = (delayMs: number, deadlineMs: number) => {
    const started = performance.now();
    return new Promise<{ err: grpc.ServiceError | null; res?: Buffer; ms: number }>((resolve) =>
      client.Echo(Buffer.from(String(delayMs)), new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (err, res) => resolve({ err, res, ms: performance.now() - started })),
    );
  };

  const count = (delayMs: number, deadlineMs: number) => {
    const started = performance.now();
    return new Promise<{ err: Error | null; messages: string[]; ms: number }>((resolve) => {
      const messages: string[] = [];
      const stream = client.Count(Buffer.from(String(delayMs)), new grpc.Metadata(), { deadline: Date.now() + deadlineMs });
      stream.on('data', (m: Buffer) => messages.push(m.toString()));
      stream.on('error', (err) => resolve({ err, messages, ms: performance.now() - started }));
      stream.on('end', () => resolve({ err: null, messages, ms: performance.now() - started }));
    });
  };

  const endpointErrors = async (): Promise<number | undefined> => {
    const clusters = (await (await fetch(`${web.adminUrl}/clusters`)).json()) as { catalog: { endpoints: { outlier: { consecutiveErrors: number } | null }[] } };
    return clusters.catalog.endpoints[0]!.outlier?.consecutiveErrors;
  };

  it('lets a unary call the app answers after 1.5 s finish within its 10 s deadline, once, blaming no endpoint', async () => {
    echoCalls = 0;
    const r = await echo(1500, 10_000);
    expect(r.err).toBeNull();
    expect(r.res?.toString()).toBe('late:1500');
    expect(r.ms).toBeGreaterThan(1400);
    expect(echoCalls).toBe(1);
    expect(await endpointErrors()).toBe(0);
  });

  it('lets a server stream whose first message comes after 2 s run under its 60 s deadline', async () => {
    const r = await count(2000, 60_000);
    expect(r.err).toBeNull();
    expect(r.messages).toEqual(['n0', 'n1', 'n2']);
    expect(r.ms).toBeGreaterThan(1900);
    expect(await endpointErrors()).toBe(0);
  });

  it('honours a deadline past the timer limit (a caller\'s grpc-timeout of 720 h, 2^31 ms being under 25 days), and passes it on in grpc-timeout form', async () => {
    const days30 = 30 * 24 * 3_600_000;
    const r = await echo(200, days30);
    expect(r.err).toBeNull();
    expect(r.res?.toString()).toBe('late:200');
    expect(r.ms).toBeGreaterThan(190);
    // The app (a grpc-js server, whose timer would fire at once too) is told at most 2^31-1 ms, in at most 8 digits.
    expect(Number(appDeadline) - Date.now()).toBeGreaterThan(24 * 24 * 3_600_000);
    expect(Number(appDeadline) - Date.now()).toBeLessThan(2 ** 31);
  });

  it('answers a malformed grpc-timeout itself, bad-request as INTERNAL, without calling the app', async () => {
    const { connect } = await import('node:http2');
    const session = connect(`http://127.0.0.1:${web.outboundPort}`);
    try {
      const before = echoCalls;
      for (const value of ['abc', '123456789H', '10x']) {
        const stream = session.request({ ':method': 'POST', ':path': '/test.Echo/Echo', ':authority': 'catalog', 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': value });
        // One empty message: a 5-byte frame header with length 0.
        stream.end(Buffer.alloc(5));
        const [headers] = (await once(stream, 'response')) as [Record<string, string>];
        stream.resume();
        await once(stream, 'close');
        expect(headers['grpc-status'], value).toBe('13');
        expect(headers['x-skein-reason'], value).toBe('bad-request');
        expect(decodeURIComponent(headers['grpc-message']!), value).toContain(`malformed grpc-timeout "${value}"`);
      }
      expect(echoCalls).toBe(before);
    } finally {
      session.close();
    }
  });

  it('still ends a call at its own deadline with DEADLINE_EXCEEDED', async () => {
    const r = await echo(3000, 1500);
    expect(r.err?.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(r.ms).toBeGreaterThan(1400);
    expect(r.ms).toBeLessThan(2900);
    const s = await scrape(web);
    expect(metric(s, 'skein_requests_total', { direction: 'outbound', destination: 'catalog', grpc_status: '0' })).toBe(3);
  });
});
