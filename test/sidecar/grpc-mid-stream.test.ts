/**
 * A gRPC answer that breaks off after its head and a first message (the app's stream reset)
 * reaches a grpc-js caller as a status, not a reset: the sidecar ends the caller's stream
 * with `grpc-status: 14` (UNAVAILABLE) and a message saying what broke, in its trailers, as
 * it does at a call's deadline, and counts the call as that status. An answer that is no
 * gRPC at all (a plain `503`) is counted as the status its caller reads from it (14).
 */
import * as grpc from '@grpc/grpc-js';
import { createServer, type Http2Server, type ServerHttp2Stream } from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Processes, writeTempConfig, type SpawnedSidecar } from '../support/index.js';
import { echoDefinition } from './grpc-fixture.js';
import { metric, scrape } from './resilience-fixture.js';

interface CountClient extends grpc.Client {
  Count(req: Buffer, md?: grpc.Metadata): grpc.ClientReadableStream<Buffer>;
}

/** One length-prefixed, uncompressed gRPC message. */
function frame(payload: string): Buffer {
  const body = Buffer.from(payload);
  const out = Buffer.alloc(5 + body.length);
  out.writeUInt32BE(body.length, 1);
  body.copy(out, 5);
  return out;
}

describe('a gRPC answer broken off mid-stream', () => {
  const procs = new Processes();
  let app: Http2Server;
  let sidecar: SpawnedSidecar;
  let client: CountClient;

  beforeAll(async () => {
    // An h2c app that sends its head and one message, then resets the stream (RST_STREAM
    // INTERNAL_ERROR) or drops its whole connection, as an app that exits would.
    app = createServer();
    app.on('stream', (stream: ServerHttp2Stream) => {
      stream.on('error', () => {});
      let request = '';
      stream.on('data', (d: Buffer) => (request += d.subarray(5).toString()));
      stream.on('end', () => {
        if (request === 'plain-503') {
          stream.respond({ ':status': 503, 'content-type': 'text/plain' });
          stream.end('busy');
          return;
        }
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
        stream.write(frame('first'), () => setTimeout(() => (request === 'drop-session' ? stream.session?.destroy() : stream.destroy(new Error('app failed'))), 50));
      });
    });
    const port = await new Promise<number>((resolve) => app.listen(0, '127.0.0.1', () => resolve((app.address() as { port: number }).port)));
    const config = writeTempConfig({
      version: 'g1',
      services: { direct: { protocol: 'grpc', retries: { attempts: 0 }, endpoints: [{ address: '127.0.0.1', port, labels: { version: 'v1' } }] } },
    });
    sidecar = await procs.sidecar({ service: 'web', appPort: port, config, extraArgs: ['--app-protocol', 'grpc'] });
    const Client = grpc.makeGenericClientConstructor(echoDefinition, 'Echo');
    client = new Client(`127.0.0.1:${sidecar.outboundPort}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': 'direct' }) as unknown as CountClient;
  });

  afterAll(async () => {
    client?.close();
    await procs.killAll();
    await new Promise((resolve) => app.close(resolve));
  });

  it.each(['reset-stream', 'drop-session'])('%s: ends the call with UNAVAILABLE and the reason in its trailers, after the message that came, and counts it so', async (how) => {
    const before = await scrape(sidecar);
    const outcome = await new Promise<{ messages: string[]; code?: number; details?: string }>((resolve) => {
      const messages: string[] = [];
      const call = client.Count(Buffer.from(how), new grpc.Metadata());
      call.on('data', (m: Buffer) => messages.push(m.toString()));
      call.on('error', (err: grpc.ServiceError) => resolve({ messages, code: err.code, details: err.details }));
      call.on('end', () => resolve({ messages }));
    });
    expect(outcome.messages).toEqual(['first']);
    // Before: 13 INTERNAL ("Received RST_STREAM with code 2"), or, for a dropped session, the
    // cut answer passed on as complete ("Call ended without gRPC status").
    expect(outcome.code, JSON.stringify(outcome)).toBe(grpc.status.UNAVAILABLE);
    expect(outcome.details).toMatch(/^direct at 127\.0\.0\.1:\d+ broke off its answer/);
    const after = await scrape(sidecar);
    const calls = (grpcStatus: string) => {
      const labels = { direction: 'outbound', destination: 'direct', grpc_status: grpcStatus };
      return metric(after, 'skein_requests_total', labels) - metric(before, 'skein_requests_total', labels);
    };
    // A gRPC call travels in an HTTP 200; its grpc-status is what metrics and canary analysis judge.
    expect(calls('14'), JSON.stringify([...after].filter(([k]) => k.includes('direct')))).toBe(1);
    expect(calls('0')).toBe(0);
  });

  it('counts a plain HTTP 503 answer (no grpc-status) as UNAVAILABLE, the status its caller reads from it', async () => {
    const before = await scrape(sidecar);
    const code = await new Promise<number | undefined>((resolve) => {
      const call = client.Count(Buffer.from('plain-503'), new grpc.Metadata());
      call.on('data', () => {});
      call.on('error', (err: grpc.ServiceError) => resolve(err.code));
      call.on('end', () => resolve(undefined));
    });
    expect(code).toBe(grpc.status.UNAVAILABLE);
    const after = await scrape(sidecar);
    const labels = { direction: 'outbound', destination: 'direct', code: '503', grpc_status: '14' };
    expect(metric(after, 'skein_requests_total', labels) - metric(before, 'skein_requests_total', labels), JSON.stringify([...after].filter(([k]) => k.includes('direct')))).toBe(1);
  });
});
