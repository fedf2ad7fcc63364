/**
 * gRPC through a sidecar pair over mTLS: the app dials the outbound listener with h2c and
 * `:authority` naming the service; sidecars speak HTTP/2 to each other (ALPN) and to a gRPC
 * app (h2c). Statuses travel in trailers, trailers-only answers included.
 */
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Processes, type SpawnedSidecar, type TestUpstream } from '../support/index.js';
import { echoDefinition, grpcClient, grpcPairTeardown, startGrpcSidecarPair } from './grpc-fixture.js';
import { get, testAgent } from './http.js';


interface EchoClient extends grpc.Client {
  Echo(req: Buffer, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): void;
  Count(req: Buffer): grpc.ClientReadableStream<Buffer>;
}

describe('gRPC through a sidecar pair', () => {
  const procs = new Processes();
  const agent = testAgent();
  let server: grpc.Server;
  let webApp: TestUpstream;
  let web: SpawnedSidecar;
  let catalog: SpawnedSidecar;
  let client: EchoClient;
  let seenMetadata: grpc.Metadata | undefined;

  beforeAll(async () => {
    server = new grpc.Server();
    server.addService(echoDefinition, {
      Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        seenMetadata = call.metadata;
        const text = call.request.toString();
        if (text === 'missing') cb({ code: grpc.status.NOT_FOUND, details: 'no such thing' });
        else cb(null, Buffer.from(`echo:${text}`));
      },
      Count: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
        for (let i = 0; i < 3; i++) call.write(Buffer.from(`n${i}`));
        call.end();
      },
    });
    ({ webApp, web, catalog } = await startGrpcSidecarPair(procs, server));
    client = grpcClient<EchoClient>(echoDefinition, web.outboundPort);
  });

  grpcPairTeardown(procs, () => ({ server, client, webApp, web, catalog }));
  afterAll(() => agent.close());

  const echo = (text: string, md = new grpc.Metadata()) =>
    new Promise<{ err: grpc.ServiceError | null; res?: Buffer }>((resolve) => client.Echo(Buffer.from(text), md, (err, res) => resolve({ err, res })));

  it('carries unary calls and their trace metadata', async () => {
    const md = new grpc.Metadata();
    md.set('traceparent', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
    const { err, res } = await echo('hello', md);
    expect(err).toBeNull();
    expect(res!.toString()).toBe('echo:hello');
    expect(String(seenMetadata!.get('traceparent')[0])).toMatch(/^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$/);
    expect(seenMetadata!.get('x-b3-parentspanid')[0]).toMatch(/^[0-9a-f]{16}$/);
  });

  // No retries: a regression shows in a few calls in a thousand, and a retried run could miss it.
  it('ends every one of thousands of unary calls at a fixed rate with a gRPC status (none cut with RST_STREAM code 0)', { retry: 0 }, async () => {
    // At a fixed rate a peer's HEADERS and DATA frames often arrive together over the
    // sidecars' TLS session; the outbound sidecar once took such a body before its head,
    // answered a bare head and cut the call: `13 INTERNAL: Received RST_STREAM with code 0
    // (Call ended without gRPC status)`, 4-12 calls of 4000 (the cause is pinned down
    // deterministically in sidecar/cluster/h2-upstream.test.ts and stages/reply.test.ts).
    const TOTAL = 6000;
    let ok = 0;
    /**
     * Calls that failed other than by a sidecar's own answer to a stalled machine: `circuit-open`
     * past maxConcurrent, or the route's timeout (DEADLINE_EXCEEDED, `timeout`), which a CI run
     * beside other test processes reached for 112 calls in a 1300 s run. Both end the call with a status.
     */
    const shedding = new Set(['circuit-open', 'timeout']);
    const broken: string[] = [];
    const calls: Promise<void>[] = [];
    // Open loop, as the benchmark's fixed rate: two calls every millisecond or so, whether or not earlier ones were answered.
    await new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        for (let i = 0; i < 2 && calls.length < TOTAL; i++) {
          calls.push(
            echo('load').then(({ err, res }) => {
              if (err === null && res!.toString() === 'echo:load') ok++;
              else if (err === null || !shedding.has(String(err.metadata.get('x-skein-reason')[0]))) broken.push(err === null ? `answer ${res!.toString()}` : `${err.code} ${err.message}`);
            }),
          );
        }
        if (calls.length >= TOTAL) {
          clearInterval(timer);
          resolve();
        }
      }, 1);
    });
    await Promise.all(calls);
    expect(broken.length, `${broken.length} of ${TOTAL} calls broken, e.g. ${broken.slice(0, 3).join('; ')}`).toBe(0);
    expect(ok).toBeGreaterThan(TOTAL / 2);
  });

  it('passes gRPC error statuses through (trailers-only answers too)', async () => {
    const { err } = await echo('missing');
    expect(err?.code).toBe(grpc.status.NOT_FOUND);
    expect(err?.details).toBe('no such thing');
  });

  it('streams server responses and records grpc_status in metrics', async () => {
    const got: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const stream = client.Count(Buffer.from('go'));
      stream.on('data', (b: Buffer) => got.push(b.toString()));
      stream.on('end', resolve);
      stream.on('error', reject);
    });
    expect(got).toEqual(['n0', 'n1', 'n2']);
    const metrics = (await get(agent, `${web.adminUrl}/metrics`)).text;
    expect(metrics).toMatch(/skein_requests_total\{direction="outbound",source="web",destination="catalog",destination_subset="\*",code="200",grpc_status="5"\} 1/);
    expect(metrics).toMatch(/skein_requests_total\{direction="outbound",source="web",destination="catalog",destination_subset="\*",code="200",grpc_status="0"\} [2-9]/);
    // The inbound side names the caller from the HTTP/2 session's verified certificate.
    const inbound = (await get(agent, `${catalog.adminUrl}/metrics`)).text;
    expect(inbound).toMatch(/skein_requests_total\{direction="inbound",source="web",destination="catalog",[^}]*grpc_status="0"\} [2-9]/);
  });

  it('answers an unknown service with UNIMPLEMENTED and x-skein-reason', async () => {
    const lost = grpcClient<EchoClient>(echoDefinition, web.outboundPort, 'nowhere');
    const err = await new Promise<grpc.ServiceError | null>((resolve) => lost.Echo(Buffer.from('x'), new grpc.Metadata(), (e) => resolve(e)));
    lost.close();
    expect(err?.code).toBe(grpc.status.UNIMPLEMENTED);
    expect(err?.metadata.get('x-skein-reason')).toEqual(['no-route']);
  });
});
