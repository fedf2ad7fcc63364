/**
 * A gRPC answer that breaks off after its head and a first message reaches a grpc-js caller as
 * a status, not a reset: the sidecar ends the caller's stream with `grpc-status: 14`
 * (UNAVAILABLE) and a message saying what broke, in its trailers, as it does at a call's
 * deadline, and counts the call as that status. However the app broke off: a reset with an
 * error code, its connection dropped, a reset with NO_ERROR or CANCEL (with or without its
 * END_STREAM first), or a plain END_STREAM with no trailers: a gRPC answer ends with its
 * status, so one that ends without any is cut short, whatever its stream's last frame said.
 * Answers that do end with a status (several messages and trailers, a unary one) pass as
 * they are. An answer that is no gRPC at all (a plain `503`) is counted as the status its
 * caller reads from it (14). The same through an mTLS sidecar pair (outbound → inbound → app).
 */
import * as grpc from '@grpc/grpc-js';
import { connect, constants, createServer, type Http2Server, type ServerHttp2Stream } from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Processes, writeTempConfig, type SpawnedSidecar } from '../support/index.js';
import { grpcClient, grpcFrame, rawMethod, startH2cGrpcPair, type GrpcSidecarPair } from './grpc-fixture.js';
import { metric, scrape } from './resilience-fixture.js';

interface CountClient extends grpc.Client {
  Count(req: Buffer, md?: grpc.Metadata): grpc.ClientReadableStream<Buffer>;
  Echo(req: Buffer, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): void;
}

const definition: grpc.ServiceDefinition = { Echo: rawMethod('Echo', false), Count: rawMethod('Count', true) };

/** A gRPC-Web trailer frame (flag 0x80) saying OK. */
const GRPC_WEB_TRAILER = ((): Buffer => {
  const text = Buffer.from('grpc-status:0\r\ngrpc-message:\r\n');
  const head = Buffer.from([0x80, 0, 0, 0, 0]);
  head.writeUInt32BE(text.length, 1);
  return Buffer.concat([head, text]);
})();

/**
 * How the app ends a Count answer after its head and one message (the request names it), in
 * the frames its caller (the sidecar) sees.
 */
const BREAKS: Record<string, (stream: ServerHttp2Stream) => void> = {
  // RST_STREAM INTERNAL_ERROR.
  'reset-stream': (stream) => stream.destroy(new Error('app failed')),
  // The whole connection gone, as when the app exits.
  'drop-session': (stream) => stream.session?.destroy(),
  // RST_STREAM NO_ERROR alone, no END_STREAM.
  'reset-no-error': (stream) => stream.destroy(),
  // END_STREAM (an empty DATA frame), then RST_STREAM NO_ERROR: node's close() with its default code.
  'close-no-error': (stream) => stream.close(),
  // RST_STREAM CANCEL.
  'close-cancel': (stream) => stream.close(constants.NGHTTP2_CANCEL),
  // END_STREAM, with no trailers and no grpc-status anywhere.
  'end-no-trailers': (stream) => stream.end(),
};

/** An h2c app whose Count answers break off per BREAKS, or answer whole (`whole`: three messages and trailers); Echo answers whole. */
async function startApp(): Promise<{ app: Http2Server; port: number }> {
  const app = createServer();
  app.on('stream', (stream: ServerHttp2Stream, headers) => {
    stream.on('error', () => {});
    let request = '';
    stream.on('data', (d: Buffer) => (request += d.subarray(5).toString()));
    stream.on('end', () => {
      if (String(headers['content-type']).startsWith('application/grpc-web')) {
        // gRPC-Web: the status in a trailer frame at the end of the body, no HTTP trailers.
        stream.respond({ ':status': 200, 'content-type': 'application/grpc-web+proto' });
        stream.end(Buffer.concat([grpcFrame('web'), GRPC_WEB_TRAILER]));
        return;
      }
      if (request === 'plain-503') {
        stream.respond({ ':status': 503, 'content-type': 'text/plain' });
        stream.end('busy');
        return;
      }
      if (request === 'whole' || headers[':path'] === '/test.Echo/Echo') {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
        if (request === 'whole') for (const m of ['n0', 'n1']) stream.write(grpcFrame(m));
        stream.end(grpcFrame(request === 'whole' ? 'n2' : `echo:${request}`));
        return;
      }
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
      // The break comes once the message has gone, a moment later: the sidecar has relayed head and message by then.
      stream.write(grpcFrame('first'), () => setTimeout(() => BREAKS[request]!(stream), 50));
    });
  });
  const port = await new Promise<number>((resolve) => app.listen(0, '127.0.0.1', () => resolve((app.address() as { port: number }).port)));
  return { app, port };
}

function count(client: CountClient, request: string): Promise<{ messages: string[]; code?: number; details?: string }> {
  return new Promise((resolve) => {
    const messages: string[] = [];
    const call = client.Count(Buffer.from(request), new grpc.Metadata());
    call.on('data', (m: Buffer) => messages.push(m.toString()));
    call.on('error', (err: grpc.ServiceError) => resolve({ messages, code: err.code, details: err.details }));
    call.on('end', () => resolve({ messages }));
  });
}

/** The calls `sidecar` counted, per grpc-status, for its outbound `destination`, between two scrapes. */
async function counted(sidecar: SpawnedSidecar, destination: string, action: () => Promise<unknown>): Promise<{ calls: (grpcStatus: string, code?: string) => number; shown: string }> {
  const before = await scrape(sidecar);
  await action();
  const after = await scrape(sidecar);
  return {
    calls: (grpcStatus, code) => {
      const labels = { direction: 'outbound', destination, grpc_status: grpcStatus, ...(code === undefined ? {} : { code }) };
      return metric(after, 'skein_requests_total', labels) - metric(before, 'skein_requests_total', labels);
    },
    shown: JSON.stringify([...after].filter(([k]) => k.startsWith('skein_requests_total') && k.includes(destination))),
  };
}

/** The cases each setup runs, through its outbound listener to service `destination`, whose app endpoint the messages name as `named`. */
function mids(setup: () => { client: CountClient; sidecar: SpawnedSidecar }, destination: string, named: RegExp): void {
  it.each(Object.keys(BREAKS))('%s: ends the call with UNAVAILABLE and the reason in its trailers, after the message that came, and counts it so', async (how) => {
    const { client, sidecar } = setup();
    let outcome: Awaited<ReturnType<typeof count>> | undefined;
    const { calls, shown } = await counted(sidecar, destination, async () => (outcome = await count(client, how)));
    expect(outcome!.messages).toEqual(['first']);
    // Before: 13 INTERNAL ("Received RST_STREAM with code 2"; with code 0 for a reset with
    // NO_ERROR or CANCEL, or an END_STREAM without trailers, counted as 2 UNKNOWN), or, for a
    // dropped session, the cut answer passed on as complete ("Call ended without gRPC status").
    expect(outcome!.code, JSON.stringify(outcome)).toBe(grpc.status.UNAVAILABLE);
    expect(outcome!.details).toMatch(named);
    // A gRPC call travels in an HTTP 200; its grpc-status is what metrics and canary analysis judge.
    expect(calls('14'), shown).toBe(1);
    expect(calls('0')).toBe(0);
    expect(calls('2')).toBe(0);
  });

  it('passes whole answers as they are: a stream of messages and its trailers, a unary call', async () => {
    const { client, sidecar } = setup();
    let streamed: Awaited<ReturnType<typeof count>> | undefined;
    let unary: { err: grpc.ServiceError | null; res?: Buffer } | undefined;
    const { calls, shown } = await counted(sidecar, destination, async () => {
      streamed = await count(client, 'whole');
      unary = await new Promise((resolve) => client.Echo(Buffer.from('hi'), new grpc.Metadata(), (err, res) => resolve({ err, res })));
    });
    expect(streamed).toEqual({ messages: ['n0', 'n1', 'n2'] });
    expect(unary!.err).toBeNull();
    expect(unary!.res?.toString()).toBe('echo:hi');
    expect(calls('0'), shown).toBe(2);
    expect(calls('14')).toBe(0);
  });

  it('passes a whole gRPC-Web answer over HTTP/2 (its status in its body, no HTTP trailers) as it is: no UNAVAILABLE added, not counted as one', async () => {
    const { sidecar } = setup();
    const session = connect(`http://127.0.0.1:${sidecar.outboundPort}`);
    session.on('error', () => {});
    let answer: { head?: Record<string, unknown>; trailers?: Record<string, unknown>; body: string; rstCode?: number } = { body: '' };
    const { calls, shown } = await counted(sidecar, destination, async () => {
      const stream = session.request({ ':path': '/test.Echo/Count', ':method': 'POST', host: destination, 'content-type': 'application/grpc-web+proto', 'x-grpc-web': '1' }, { endStream: false });
      stream.on('error', () => {});
      const chunks: Buffer[] = [];
      stream.on('response', (h) => (answer.head = h));
      stream.on('trailers', (t) => (answer.trailers = t));
      stream.on('data', (d: Buffer) => chunks.push(d));
      stream.end(grpcFrame('web'));
      await new Promise((resolve) => stream.on('close', resolve));
      answer = { ...answer, body: Buffer.concat(chunks).toString('latin1'), rstCode: stream.rstCode };
    });
    session.destroy();
    expect(answer.head?.[':status']).toBe(200);
    expect(answer.body).toBe(Buffer.concat([grpcFrame('web'), GRPC_WEB_TRAILER]).toString('latin1'));
    // Before: trailers `grpc-status: 14` ('… broke off its answer: it ended without a grpc-status'), counted 14, the endpoint blamed.
    expect(answer.trailers?.['grpc-status'], JSON.stringify(answer.trailers)).toBeUndefined();
    expect(answer.rstCode).toBe(constants.NGHTTP2_NO_ERROR);
    expect(calls('14'), shown).toBe(0);
  });

  it('counts a plain HTTP 503 answer (no grpc-status) as UNAVAILABLE, the status its caller reads from it', async () => {
    const { client, sidecar } = setup();
    let outcome: Awaited<ReturnType<typeof count>> | undefined;
    const { calls, shown } = await counted(sidecar, destination, async () => (outcome = await count(client, 'plain-503')));
    expect(outcome!.code).toBe(grpc.status.UNAVAILABLE);
    expect(calls('14', '503'), shown).toBe(1);
  });
}

describe('a gRPC answer broken off mid-stream', () => {
  const procs = new Processes();
  let app: Http2Server;
  let sidecar: SpawnedSidecar;
  let client: CountClient;

  beforeAll(async () => {
    let port: number;
    ({ app, port } = await startApp());
    const config = writeTempConfig({
      version: 'g1',
      services: { direct: { protocol: 'grpc', retries: { attempts: 0 }, endpoints: [{ address: '127.0.0.1', port, labels: { version: 'v1' } }] } },
    });
    sidecar = await procs.sidecar({ service: 'web', appPort: port, config, extraArgs: ['--app-protocol', 'grpc'] });
    client = grpcClient<CountClient>(definition, sidecar.outboundPort, 'direct');
  });

  afterAll(async () => {
    client?.close();
    await procs.killAll();
    await new Promise((resolve) => app.close(resolve));
  });

  mids(() => ({ client, sidecar }), 'direct', /^direct at 127\.0\.0\.1:\d+ broke off its answer/);
});

describe('a gRPC answer broken off mid-stream, through a sidecar pair', () => {
  const procs = new Processes();
  let app: Http2Server;
  let pair: GrpcSidecarPair;
  let client: CountClient;

  beforeAll(async () => {
    let port: number;
    ({ app, port } = await startApp());
    pair = await startH2cGrpcPair(procs, port, { retries: { attempts: 0 } });
    client = grpcClient<CountClient>(definition, pair.web.outboundPort);
  });

  afterAll(async () => {
    client?.close();
    await procs.killAll();
    await pair?.webApp.close();
    await new Promise((resolve) => app.close(resolve));
  });

  // The inbound sidecar, which saw the app break off, says so; the outbound relays its trailers.
  mids(() => ({ client, sidecar: pair.web }), 'catalog', /^catalog at 127\.0\.0\.1:\d+ broke off its answer/);
});
