/**
 * Large heads through an mTLS sidecar pair to an h2c app. An answer with more than 128 header
 * fields (many metadata entries in its head or its trailers), within the 64 KiB head limit: the
 * sidecars' listeners take such request heads (maxHeaderListPairs 4096, as HTTP/1.1 counts only
 * bytes); their HTTP/2 upstream sessions kept node's default of 128 pairs, so such an answer
 * was refused with RST_STREAM ENHANCE_YOUR_CALM: the caller got `14 UNAVAILABLE` (`reset the
 * connection before answering`, `retries-exhausted`, or `broke off its answer` for trailers)
 * and the app's endpoint was blamed for a reset. And a request head just under the limit,
 * which the sidecars' own fields take past node's 64 KiB send limit.
 */
import { connect, createServer, type Http2Server, type ServerHttp2Stream } from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Processes, type SpawnedSidecar, type TestUpstream } from '../support/index.js';
import { grpcFrame, startH2cGrpcPair } from './grpc-fixture.js';
import { metric, scrape } from './resilience-fixture.js';

interface Answer {
  head: Record<string, unknown>;
  trailers: Record<string, unknown>;
  rstCode: number | undefined;
}

/** One call through `port` asking the app for `headFields` extra head fields and `trailerFields` extra trailers, sending `extra` fields. */
function call(port: number, headFields: number, trailerFields: number, extra: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    // The caller takes as many fields as it is sent: the limit under test is the sidecars'.
    const session = connect(`http://127.0.0.1:${port}`, { maxHeaderListPairs: 4096 });
    session.on('error', reject);
    const stream = session.request({
      ':method': 'POST', ':path': '/test.Echo/Echo', ':authority': 'catalog',
      'content-type': 'application/grpc', te: 'trailers', 'x-head-fields': String(headFields), 'x-trailer-fields': String(trailerFields), ...extra,
    });
    const answer: Answer = { head: {}, trailers: {}, rstCode: undefined };
    stream.on('response', (h) => (answer.head = h));
    stream.on('trailers', (t) => (answer.trailers = t));
    stream.on('error', () => {});
    stream.resume();
    stream.on('close', () => {
      answer.rstCode = stream.rstCode;
      session.close();
      resolve(answer);
    });
    stream.end(grpcFrame(''));
  });
}

const fields = (prefix: string, n: number): Record<string, string> => Object.fromEntries(Array.from({ length: n }, (_, i) => [`${prefix}${i}`, `v${i}`]));
const countOf = (headers: Record<string, unknown>, prefix: string): number => Object.keys(headers).filter((k) => k.startsWith(prefix)).length;

describe('gRPC answers with more than 128 header fields', () => {
  const procs = new Processes();
  let app: Http2Server;
  let webApp: TestUpstream;
  let web: SpawnedSidecar;
  let catalog: SpawnedSidecar;
  /** How many fields each call the app got had. */
  const appSaw: number[] = [];

  beforeAll(async () => {
    app = createServer({ maxHeaderListPairs: 4096 });
    app.on('stream', (stream: ServerHttp2Stream, headers) => {
      appSaw.push(Object.keys(headers).length);
      stream.on('error', () => {});
      stream.resume();
      stream.on('end', () => {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc', ...fields('x-head-', Number(headers['x-head-fields'])) }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', ...fields('x-trailer-', Number(headers['x-trailer-fields'])) }));
        stream.end(grpcFrame('ok'));
      });
    });
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    ({ webApp, web, catalog } = await startH2cGrpcPair(procs, (app.address() as { port: number }).port));
  });

  afterAll(async () => {
    await procs.killAll();
    app.close();
    await webApp?.close();
  });

  it('carries 300 metadata fields in the head and 300 in the trailers to the caller, counted as OK', async () => {
    const answer = await call(web.outboundPort, 300, 0);
    expect(answer.head[':status']).toBe(200);
    expect(answer.head['x-skein-reason']).toBeUndefined();
    expect(countOf(answer.head, 'x-head-')).toBe(300);
    expect(answer.trailers['grpc-status']).toBe('0');

    const withTrailers = await call(web.outboundPort, 0, 300);
    expect(withTrailers.trailers['grpc-status']).toBe('0');
    expect(withTrailers.trailers['x-skein-reason']).toBeUndefined();
    expect(countOf(withTrailers.trailers, 'x-trailer-')).toBe(300);

    expect(metric(await scrape(web), 'skein_requests_total', { direction: 'outbound', grpc_status: '0' })).toBe(2);
    expect(metric(await scrape(web), 'skein_requests_total', { direction: 'outbound', grpc_status: '14' })).toBe(0);
    expect(metric(await scrape(catalog), 'skein_requests_total', { direction: 'inbound', grpc_status: '0' })).toBe(2);
  });

  it('carries a request head just under the 64 KiB limit, though the sidecars\' own fields take it past 64 KiB', async () => {
    // node:http2 refuses to send a head of over 64 KiB (maxSendHeaderBlockLength) and reports
    // it as a REFUSED_STREAM, which the HTTP/2 upstream took for its peer refusing the stream
    // unprocessed: sent again, refused again, the call failed as never sent, `14
    // upstream-connect-failure` (`could not connect to catalog …`), a connect failure of an
    // endpoint that never saw it, counted against its breaker and outlier detection.
    // Random letters, so HPACK's Huffman coding cannot shrink the field much.
    const letters = (n: number) => Array.from({ length: n }, () => String.fromCharCode(97 + Math.floor(Math.random() * 26))).join('');
    const calls = appSaw.length;
    for (const size of [65_000, 65_200]) {
      const big = await call(web.outboundPort, 0, 0, { 'x-big': letters(size) });
      expect(big.head[':status']).toBe(200);
      expect(big.head['x-skein-reason']).toBeUndefined();
      expect(big.trailers['grpc-status']).toBe('0');
    }
    expect(appSaw.length).toBe(calls + 2);
    const s = await scrape(web);
    expect(metric(s, 'skein_requests_total', { direction: 'outbound', grpc_status: '14' })).toBe(0);
    expect(metric(s, 'skein_requests_total', { direction: 'outbound', grpc_status: '0' })).toBe(4);
  });
});
