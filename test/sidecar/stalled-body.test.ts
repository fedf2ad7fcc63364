/**
 * A request body that stops moving for the listener's head limit (60 s): a client that
 * stops sending gets `408 bad-request` (its fault: the upstream attempt is dropped and no
 * endpoint blamed), buffered and streamed bodies alike, HTTP/1.1 and HTTP/2, plain and
 * through an mTLS pair; an upstream that stops reading a body the client still sends is a
 * `504 timeout` (its fault). A gRPC call whose answer had begun (grpc-js, bidirectional) ends
 * with status 13 and the reason in its trailers instead.
 * Either way the request no longer counts in flight. The cases run side by side, so the
 * file takes one head limit.
 */
import * as grpc from '@grpc/grpc-js';
import { request } from 'node:http';
import { connect as connectH2 } from 'node:http2';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { echoHandler, Processes, startUpstream, type SpawnedSidecar, type TestUpstream } from '../support/index.js';
import { startBodyTestSidecars } from './body-fixture.js';
import { grpcClient, rawMethod } from './grpc-fixture.js';
import { metric, scrape } from './resilience-fixture.js';

const HEAD_LIMIT_MS = 60_000;

/** Writes `head` and `body` on a fresh connection and keeps it open; resolves with all read once the sidecar closes it. */
function stall(port: number, payload: string): Promise<{ answer: string; ms: number }> {
  const started = performance.now();
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let answer = '';
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => (answer += d));
    socket.on('error', () => {});
    socket.on('close', () => resolve({ answer, ms: performance.now() - started }));
    socket.write(payload);
  });
}

/** POSTs 32 MiB to an app that reads none of it: the upload blocks once the buffers on the way are full. */
function unreadUpload(sc: SpawnedSidecar, host: string): Promise<{ status: number; reason: string | undefined; ms: number }> {
  const started = performance.now();
  const total = 32 * 1024 * 1024;
  return new Promise((resolve, reject) => {
    const req = request(`${sc.outboundUrl}/unread`, { method: 'POST', headers: { host, 'content-length': String(total) }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, reason: res.headers['x-skein-reason'] as string | undefined, ms: performance.now() - started }));
    });
    req.on('error', (err) => reject(err));
    const chunk = Buffer.alloc(64 * 1024, 'u');
    let sent = 0;
    const more = (): void => {
      while (sent < total) {
        sent += chunk.length;
        if (!req.write(chunk)) {
          req.once('drain', more);
          return;
        }
      }
      req.end();
    };
    more();
  });
}

/**
 * An HTTP/2 POST (h2c) that writes `body` and then either never ends its stream or (`total`)
 * keeps writing up to `total` bytes; resolves with the answer once it has come.
 */
function h2Post(sc: SpawnedSidecar, host: string, path: string, body: Buffer, total = 0): Promise<{ status: number; reason: string | undefined; text: string; ms: number }> {
  const started = performance.now();
  return new Promise((resolve) => {
    const session = connectH2(`http://127.0.0.1:${sc.outboundPort}`);
    session.on('error', () => {});
    const stream = session.request({ ':method': 'POST', ':path': path, ':authority': host }, { endStream: false });
    let status = 0;
    let reason: string | undefined;
    let text = '';
    stream.on('response', (headers) => {
      status = Number(headers[':status']);
      reason = headers['x-skein-reason'] as string | undefined;
    });
    stream.setEncoding('utf8');
    stream.on('data', (d: string) => (text += d));
    stream.on('error', () => {});
    // The sidecar answers, then resets the stream (NO_ERROR); node's client only closes a stream it is still writing once those writes end.
    const done = (): void => {
      session.destroy();
      resolve({ status, reason, text, ms: performance.now() - started });
    };
    stream.on('end', done);
    stream.on('close', done);
    stream.write(body);
    let sent = body.length;
    const more = (): void => {
      while (sent < total) {
        sent += body.length;
        if (!stream.write(body)) {
          stream.once('drain', more);
          return;
        }
      }
    };
    more();
  });
}

interface ChatClient extends grpc.Client {
  Chat(): grpc.ClientDuplexStream<Buffer, Buffer>;
}

/** A bidirectional call to `/test.Echo/Chat` at `service` that sends one message, reads the answer's first, then goes quiet. */
function quietBidi(sc: SpawnedSidecar, service: string): Promise<{ err: grpc.ServiceError; got: number; ms: number }> {
  const started = performance.now();
  const client = grpcClient<ChatClient>({ Chat: rawMethod('Chat', true, true) }, sc.outboundPort, service);
  const call = client.Chat();
  let got = 0;
  return new Promise((resolve) => {
    call.on('data', () => got++);
    call.on('error', (err: grpc.ServiceError) => {
      client.close();
      resolve({ err, got, ms: performance.now() - started });
    });
    call.write(Buffer.from('hi'));
  });
}

interface Clusters {
  [service: string]: { endpoints: { outlier: { consecutiveErrors: number } | null }[] };
}

describe('stalled request bodies', () => {
  const procs = new Processes();
  let app: TestUpstream;
  /** Through an mTLS pair: web → catalog's sidecar → app. */
  let web: SpawnedSidecar;
  /** web without identity, to the app as a plain endpoint (`direct`). */
  let plainWeb: SpawnedSidecar;

  beforeAll(async () => {
    app = await startUpstream((req, res) => {
      if (req.url === '/unread') return; // reads nothing, answers nothing
      if (req.url === '/test.Echo/Chat') {
        // A gRPC answer begun (one message), reading the rest of the call as it comes.
        res.writeHead(200, { 'content-type': 'application/grpc' });
        res.write(Buffer.from([0, 0, 0, 0, 2, 0x6f, 0x6b]));
        req.resume();
        return;
      }
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => echoHandler(`got ${Buffer.concat(chunks).length} bytes`)(req, res));
    });
    // Timeouts far past the head limit, so only the body's stall can end these requests.
    const policy = { timeout: '5m', retries: { attempts: 2, perTryTimeout: '4m' } };
    // sink and h2sink: the same app under other names, for the uploads it never reads (outlier state is per service); chat for the gRPC call.
    ({ web, plainWeb } = await startBodyTestSidecars(procs, app, ['direct', 'sink', 'h2sink', 'chat'], policy));
  });

  afterAll(async () => {
    await procs.killAll();
    await app.close();
  });

  it('answers 408 bad-request to a client that stops sending its body, 504 timeout when the upstream stops reading it', async () => {
    const declared = (host: string) => `POST /echo HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 100\r\n\r\nabc`;
    const chunked = (host: string) => `POST /echo HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n`;
    const streamed = (host: string) => `POST /echo HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 200000\r\n\r\n${'s'.repeat(10_000)}`;
    const [stalls, unread, h2Stalls, h2Unread, grpcStall] = await Promise.all([
      Promise.all([
        // Buffered for replay (Content-Length up to 64 KiB, a route that retries).
        stall(plainWeb.outboundPort, declared('direct')),
        stall(web.outboundPort, declared('catalog')),
        // Streamed: chunked, and a Content-Length past 64 KiB.
        stall(plainWeb.outboundPort, chunked('direct')),
        stall(web.outboundPort, chunked('catalog')),
        stall(web.outboundPort, streamed('catalog')),
      ]),
      unreadUpload(plainWeb, 'sink'),
      // HTTP/2 has no connection sweep: its exchange checks the body. Streamed, and buffered (a gRPC call the route may replay: none here).
      Promise.all([h2Post(plainWeb, 'direct', '/echo', Buffer.from('abc')), h2Post(web, 'catalog', '/echo', Buffer.from('abc'))]),
      h2Post(plainWeb, 'h2sink', '/unread', Buffer.alloc(64 * 1024, 'u'), 32 * 1024 * 1024),
      quietBidi(plainWeb, 'chat'),
    ]);
    /** A stall ends once the head limit has passed, and not long after. */
    const expectEndedAtHeadLimit = (ms: number, what: string): void => {
      expect(ms, what).toBeGreaterThan(HEAD_LIMIT_MS - 100);
      expect(ms, what).toBeLessThan(HEAD_LIMIT_MS + 5_000);
    };
    for (const [i, { status, reason, text, ms }] of h2Stalls.entries()) {
      expect(status, `h2 stall ${i}`).toBe(408);
      expect(reason).toBe('bad-request');
      expect(text).toContain('the request body stalled');
      expectEndedAtHeadLimit(ms, `h2 stall ${i}`);
    }
    // A gRPC answer begun ends with a status in its trailers: a bare RST_STREAM NO_ERROR would be grpc-js's `Call ended without gRPC status`.
    expect(grpcStall.got).toBe(1);
    expect(grpcStall.err.code).toBe(grpc.status.INTERNAL);
    expect(grpcStall.err.metadata.get('x-skein-reason')).toEqual(['bad-request']);
    expect(grpcStall.err.details).toContain('the request body stalled');
    expectEndedAtHeadLimit(grpcStall.ms, 'gRPC stall');
    for (const [i, { answer, ms }] of stalls.entries()) {
      expect(answer, `stall ${i}`).toMatch(/^HTTP\/1.1 408/);
      expect(answer).toMatch(/x-skein-reason: bad-request/i);
      expect(answer).toMatch(/connection: close/i);
      expect(answer).toContain('the request body stalled');
      expectEndedAtHeadLimit(ms, `stall ${i}`);
    }
    for (const [what, { status, reason, ms }] of [['h2 unread', h2Unread], ['unread', unread]] as const) {
      expect(status, what).toBe(504);
      expect(reason, what).toBe('timeout');
      expect(ms, what).toBeGreaterThan(HEAD_LIMIT_MS - 100);
    }

    for (const [sc, service, stalled] of [
      [plainWeb, 'direct', 3],
      [web, 'catalog', 4],
    ] as const) {
      const s = await scrape(sc);
      expect(metric(s, 'skein_requests_total', { direction: 'outbound', destination: service, code: '408' })).toBe(stalled);
      expect(metric(s, 'skein_requests_total', { direction: 'outbound', destination: service, code: '503' })).toBe(0);
      expect(metric(s, 'skein_retries_total', { destination: service })).toBe(0);
      const drain = (await (await fetch(`${sc.adminUrl}/drain`, { method: 'POST' })).json()) as { inFlight: number };
      expect(drain.inFlight).toBe(0);
    }
    // The stalled clients blamed no endpoint; the app that read nothing was.
    const catalogClusters = (await (await fetch(`${web.adminUrl}/clusters`)).json()) as Clusters;
    expect(catalogClusters.catalog!.endpoints[0]!.outlier?.consecutiveErrors).toBe(0);
    const plainClusters = (await (await fetch(`${plainWeb.adminUrl}/clusters`)).json()) as Clusters;
    expect(plainClusters.direct!.endpoints[0]!.outlier?.consecutiveErrors).toBe(0);
    expect(plainClusters.sink!.endpoints[0]!.outlier?.consecutiveErrors).toBe(1);
    expect(plainClusters.h2sink!.endpoints[0]!.outlier?.consecutiveErrors).toBe(1);
    const plain = await scrape(plainWeb);
    expect(metric(plain, 'skein_requests_total', { direction: 'outbound', destination: 'sink', code: '504' })).toBe(1);
    expect(metric(plain, 'skein_requests_total', { direction: 'outbound', destination: 'h2sink', code: '504' })).toBe(1);
  }, 120_000);
});
