/**
 * A gRPC call whose answer has ended for its caller before its app's stream did: the app's
 * head carries grpc-status (the sidecar passes it on as a trailers-only answer, which ends the
 * caller's call) but its stream stays open. Whatever comes after, the caller's deadline
 * passing, the app's reset, or messages and trailers the app still sends, the call counts as
 * the status its caller got. Before, the deadline counted it as 4 DEADLINE_EXCEEDED (504), and
 * a reset as 14 UNAVAILABLE (503), statuses no caller saw.
 */
import * as grpc from '@grpc/grpc-js';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { connect, constants, createServer, type Http2Server, type ServerHttp2Stream } from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Processes, waitUntil, writeTempConfig, type SpawnedSidecar } from '../support/index.js';
import { grpcClient, grpcFrame, rawMethod } from './grpc-fixture.js';
import { metric, scrape, type Scrape } from './resilience-fixture.js';

interface EchoClient extends grpc.Client {
  Echo(req: Buffer, md: grpc.Metadata, options: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): void;
}

/** What the app does after its head with `grpc-status: 5` (NOT_FOUND), no END_STREAM with it; the request names it. */
const AFTER: Record<string, (stream: ServerHttp2Stream) => void> = {
  // Nothing: the stream stays open until the sidecar gives it up.
  open: () => {},
  // RST_STREAM INTERNAL_ERROR alone, once the head has gone (close() would send END_STREAM first).
  reset: (stream) => setTimeout(() => stream.destroy(new Error('app failed')), 50),
  // A message, then trailers with another status.
  more: (stream) => {
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
    stream.end(grpcFrame('late'));
  },
};

describe('a gRPC answer that ended for its caller before its app\'s stream did', () => {
  const procs = new Processes();
  let app: Http2Server;
  let sidecar: SpawnedSidecar;
  let client: EchoClient;

  beforeAll(async () => {
    app = createServer();
    app.on('stream', (stream: ServerHttp2Stream) => {
      stream.on('error', () => {});
      let request = '';
      stream.on('data', (d: Buffer) => (request += d.subarray(5).toString()));
      stream.on('end', () => {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '5', 'grpc-message': 'no such thing' }, { waitForTrailers: request === 'more' });
        AFTER[request]!(stream);
      });
    });
    const port = await new Promise<number>((resolve) => app.listen(0, '127.0.0.1', () => resolve((app.address() as { port: number }).port)));
    const config = writeTempConfig({ version: 'g1', services: { direct: { protocol: 'grpc', retries: { attempts: 0 }, endpoints: [{ address: '127.0.0.1', port }] } } });
    sidecar = await procs.sidecar({ service: 'web', appPort: port, config, extraArgs: ['--app-protocol', 'grpc'] });
    client = grpcClient<EchoClient>({ Echo: rawMethod('Echo', false) }, sidecar.outboundPort, 'direct');
  });

  afterAll(async () => {
    client?.close();
    await procs.killAll();
    await new Promise((resolve) => app.close(resolve));
  });

  it.each(Object.keys(AFTER))('%s: the caller gets NOT_FOUND, and the call counts as NOT_FOUND once it is over, never as the deadline or a break', async (how) => {
    const calls = (s: Scrape, labels: Record<string, string> = {}) => metric(s, 'skein_requests_total', { direction: 'outbound', destination: 'direct', ...labels });
    const before = await scrape(sidecar);
    const err = await new Promise<grpc.ServiceError | null>((resolve) =>
      client.Echo(Buffer.from(how), new grpc.Metadata(), { deadline: Date.now() + 300 }, (e) => resolve(e)),
    );
    expect(err?.code, err?.message).toBe(grpc.status.NOT_FOUND);
    expect(err?.details).toBe('no such thing');
    // The call is counted when the sidecar is done with it: at the app's end of it, or its deadline.
    const after = await waitUntil(async () => {
      const s = await scrape(sidecar);
      return calls(s) > calls(before) ? s : undefined;
    }, { what: `the ${how} call counted` });
    const shown = JSON.stringify([...after].filter(([k]) => k.startsWith('skein_requests_total') && k.includes('direct')));
    expect(calls(after) - calls(before), shown).toBe(1);
    expect(calls(after, { code: '200', grpc_status: '5' }) - calls(before, { code: '200', grpc_status: '5' }), shown).toBe(1);
  });
});

/**
 * The same answers to a caller still sending (a client or bidi stream that goes on after the
 * app has answered): once the sidecar is done with the call, at its deadline or the app's reset,
 * the caller's stream is closed with RST_STREAM NO_ERROR, as after a whole answer. Until
 * 2026-12-07 (after the change that counts these calls as their caller's status) it stayed open
 * and in flight for as long as the caller sent.
 */
describe('a gRPC answer that ended for its caller while the caller still sends', () => {
  const procs = new Processes();
  let app: Http2Server;
  let sidecar: SpawnedSidecar;

  beforeAll(async () => {
    app = createServer();
    // Answers at once with `grpc-status: 5` in its head, reading none of the call, its stream left open.
    app.on('stream', (stream: ServerHttp2Stream, headers) => {
      stream.on('error', () => {});
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '5', 'grpc-message': 'no such thing' });
      if (headers[':path'] === '/test.Echo/Reset') setTimeout(() => stream.destroy(new Error('app failed')), 50);
    });
    const port = await new Promise<number>((resolve) => app.listen(0, '127.0.0.1', () => resolve((app.address() as { port: number }).port)));
    const config = writeTempConfig({ version: 'g1', services: { direct: { protocol: 'grpc', retries: { attempts: 0 }, endpoints: [{ address: '127.0.0.1', port }] } } });
    sidecar = await procs.sidecar({ service: 'web', appPort: port, config, extraArgs: ['--app-protocol', 'grpc'], drainTimeout: '5s', waitFor: '/live' });
  });

  afterAll(async () => {
    await procs.killAll();
    await new Promise((resolve) => app.close(resolve));
  });

  it('open until the deadline, or reset by the app: the caller\'s stream is closed with NO_ERROR, counted once as NOT_FOUND; the drain finds nothing in flight', async () => {
    const calls = (s: Scrape, labels: Record<string, string> = {}) => metric(s, 'skein_requests_total', { direction: 'outbound', destination: 'direct', ...labels });
    const before = await scrape(sidecar);
    const session = connect(`http://127.0.0.1:${sidecar.outboundPort}`);
    session.on('error', () => {});
    for (const path of ['/test.Echo/Open', '/test.Echo/Reset']) {
      const stream = session.request({ ':path': path, ':method': 'POST', host: 'direct', 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': '300m' }, { endStream: false });
      stream.on('error', () => {});
      const head = new Promise<Record<string, unknown>>((resolve) => stream.on('response', resolve));
      let code: number | undefined | null = null;
      stream.on('close', () => (code = stream.rstCode));
      stream.resume();
      // A message every 50 ms, the call never ending.
      const message = Buffer.from([0, 0, 0, 0, 1, 0x2a]);
      stream.write(message);
      const sending = setInterval(() => !stream.closed && !stream.destroyed && stream.write(message), 50);
      try {
        expect((await head)['grpc-status'], path).toBe('5');
        await waitUntil(() => code !== null, { timeoutMs: 3_000, what: `${path}: the caller's stream closed` });
        expect(code, path).toBe(constants.NGHTTP2_NO_ERROR);
      } finally {
        clearInterval(sending);
      }
    }
    const after = await waitUntil(async () => {
      const s = await scrape(sidecar);
      return calls(s) - calls(before) >= 2 ? s : undefined;
    }, { what: 'both calls counted' });
    const shown = JSON.stringify([...after].filter(([k]) => k.startsWith('skein_requests_total') && k.includes('direct')));
    expect(calls(after) - calls(before), shown).toBe(2);
    expect(calls(after, { code: '200', grpc_status: '5' }) - calls(before, { code: '200', grpc_status: '5' }), shown).toBe(2);
    const drain = await fetch(`${sidecar.adminUrl}/drain`, { method: 'POST' });
    expect(((await drain.json()) as { inFlight: number }).inFlight).toBe(0);
    session.destroy();
  });
});

/**
 * The same answer to a call with no deadline at all (no grpc-timeout, the route's timeout off):
 * once its caller's stream has closed, nothing waits for the app's stream; it is cancelled and
 * the call counted as what its caller got. Before, such a call was never counted, and the app's
 * stream stayed open for as long as the app kept it.
 */
describe('a gRPC answer that ended for its caller, the call with no deadline', () => {
  const procs = new Processes();
  let app: Http2Server;
  let sidecar: SpawnedSidecar;
  let client: EchoClient;
  const appStreams: ServerHttp2Stream[] = [];

  beforeAll(async () => {
    app = createServer();
    app.on('stream', (stream: ServerHttp2Stream) => {
      stream.on('error', () => {});
      appStreams.push(stream);
      stream.resume();
      stream.on('end', () => stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '5', 'grpc-message': 'no such thing' }));
    });
    const port = await new Promise<number>((resolve) => app.listen(0, '127.0.0.1', () => resolve((app.address() as { port: number }).port)));
    const config = writeTempConfig({ version: 'g1', services: { direct: { protocol: 'grpc', timeout: '0s', retries: { attempts: 0 }, endpoints: [{ address: '127.0.0.1', port }] } } });
    sidecar = await procs.sidecar({ service: 'web', appPort: port, config, extraArgs: ['--app-protocol', 'grpc'], waitFor: '/live' });
    client = grpcClient<EchoClient>({ Echo: rawMethod('Echo', false) }, sidecar.outboundPort, 'direct');
  });

  afterAll(async () => {
    client?.close();
    await procs.killAll();
    await new Promise((resolve) => app.close(resolve));
  });

  it('the caller gets NOT_FOUND; the call counts as NOT_FOUND, once, and the app\'s stream is cancelled', async () => {
    const calls = (s: Scrape, labels: Record<string, string> = {}) => metric(s, 'skein_requests_total', { direction: 'outbound', destination: 'direct', ...labels });
    const before = await scrape(sidecar);
    const err = await new Promise<grpc.ServiceError | null>((resolve) => client.Echo(Buffer.from('x'), new grpc.Metadata(), {}, (e) => resolve(e)));
    expect(err?.code, err?.message).toBe(grpc.status.NOT_FOUND);
    const after = await waitUntil(async () => {
      const s = await scrape(sidecar);
      return calls(s) > calls(before) ? s : undefined;
    }, { timeoutMs: 3_000, what: 'the call counted' });
    const shown = JSON.stringify([...after].filter(([k]) => k.startsWith('skein_requests_total') && k.includes('direct')));
    expect(calls(after) - calls(before), shown).toBe(1);
    expect(calls(after, { code: '200', grpc_status: '5' }) - calls(before, { code: '200', grpc_status: '5' }), shown).toBe(1);
    await waitUntil(() => appStreams.length === 1 && appStreams[0]!.closed, { timeoutMs: 3_000, what: "the app's stream closed" });
  });
});

/**
 * The same answer when the sidecar's drain timeout runs out first: a call with no deadline
 * whose caller's stream stays open. The caller has its answer; the call is given up and counted
 * (here: its span, exported as the sidecar exits) as what its caller got. Before, the drain's
 * cut-off "answered" it again and counted it as 14 UNAVAILABLE, `retries-exhausted`.
 */
describe('a gRPC answer that ended for its caller, cut off by the drain timeout', () => {
  const procs = new Processes();
  let app: Http2Server;
  let receiver: HttpServer;
  const spans: { attributes: { key: string; value: { intValue?: string; stringValue?: string } }[] }[] = [];

  beforeAll(async () => {
    app = createServer();
    app.on('stream', (stream: ServerHttp2Stream) => {
      stream.on('error', () => {});
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '5', 'grpc-message': 'no such thing' });
    });
    receiver = createHttpServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        type Body = { resourceSpans: { scopeSpans: { spans: typeof spans }[] }[] };
        for (const rs of (JSON.parse(Buffer.concat(chunks).toString('utf8')) as Body).resourceSpans) for (const ss of rs.scopeSpans) spans.push(...ss.spans);
        res.end('{}');
      });
    });
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  });

  afterAll(async () => {
    await procs.killAll();
    await new Promise((resolve) => app.close(resolve));
    await new Promise((resolve) => receiver.close(resolve));
  });

  it('is counted as NOT_FOUND, not as the cut-off\'s UNAVAILABLE', async () => {
    const port = (app.address() as { port: number }).port;
    const config = writeTempConfig({ version: 'g1', services: { direct: { protocol: 'grpc', timeout: '0s', retries: { attempts: 0 }, endpoints: [{ address: '127.0.0.1', port }] } } });
    const sidecar = await procs.sidecar({
      service: 'web', appPort: port, config, extraArgs: ['--app-protocol', 'grpc'], drainTimeout: '500ms', waitFor: '/live',
      env: { SKEIN_OTLP_ENDPOINT: `http://127.0.0.1:${(receiver.address() as { port: number }).port}` },
    });
    const session = connect(`http://127.0.0.1:${sidecar.outboundPort}`);
    session.on('error', () => {});
    const stream = session.request({ ':path': '/test.Echo/Open', ':method': 'POST', host: 'direct', 'content-type': 'application/grpc', te: 'trailers' }, { endStream: false });
    stream.on('error', () => {});
    stream.write(Buffer.from([0, 0, 0, 0, 1, 0x2a]));
    const head = await new Promise<Record<string, unknown>>((resolve) => stream.on('response', resolve));
    expect(head['grpc-status']).toBe('5');
    sidecar.kill('SIGTERM');
    await sidecar.exited;
    session.destroy();
    const attr = (s: (typeof spans)[number], key: string) => s.attributes.find((a) => a.key === key)?.value;
    await waitUntil(() => spans.length > 0, { timeoutMs: 5_000, what: 'the span exported at exit' });
    expect(spans.map((s) => [attr(s, 'http.response.status_code')?.intValue, attr(s, 'rpc.grpc.status_code')?.intValue, attr(s, 'skein.reason')?.stringValue])).toEqual([['200', '5', undefined]]);
    expect(sidecar.output()).toContain('drain timeout reached');
  });
});
