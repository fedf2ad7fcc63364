/**
 * An upstream answer with a valid head and a malformed chunked body (README "Bad input"):
 * while nothing of it has reached the caller (an HTTP/1.1 caller's head is held until the
 * first body bytes), the caller gets the sidecar's own `503 retries-exhausted` saying why,
 * after the retries the policy allows, counted as 503; once body bytes went out, the
 * caller's response is cut (no last chunk) and counted as 503, never as the app's 200.
 * Directly to a plain endpoint, and through the mux to a peer sidecar (whose stream to the
 * caller's sidecar is cut, since a mux stream's head is framed at once). The same holds for
 * the route's timeout passing between the head and the first body byte: 504, not an empty cut.
 */
import { connect as connectH2 } from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Processes, startRawUpstream, type RawUpstream, type SpawnedSidecar } from '../support/index.js';
import { startBodyTestSidecars } from './body-fixture.js';
import { rawExchange } from './http.js';
import { metric, scrape } from './resilience-fixture.js';

const HEAD = 'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n';
/** A first chunk far past one socket write, so it reaches the caller before the garbage comes. */
const BIG = 256 * 1024;

/** A raw TCP app: one request per connection, answered by path, and the paths it was asked for. */
async function startRawApp(): Promise<RawUpstream & { paths: string[] }> {
  const paths: string[] = [];
  const app = await startRawUpstream((socket) => {
    let head = '';
    const onData = (d: Buffer): void => {
      head += d.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      const path = head.split(' ')[1]!;
      paths.push(path);
      if (path === '/bad-body') {
        // The head alone first, as an app that has begun its answer; then a chunk size that is not hex.
        socket.write(HEAD);
        setTimeout(() => socket.end('zz\r\n'), 50);
      } else if (path === '/bad-after-data') {
        socket.write(`${HEAD}${BIG.toString(16)}\r\n`);
        socket.write(Buffer.alloc(BIG, 'a'));
        socket.write('\r\n');
        setTimeout(() => socket.end('zz\r\n'), 300);
      } else if (path === '/head-then-stall') {
        // A head, then nothing: the route's timeout passes with the head still held.
        socket.write(HEAD);
      } else socket.end('HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok');
    };
    socket.on('data', onData);
  });
  return { ...app, paths };
}

const request = (path: string, host: string): string => `GET ${path} HTTP/1.1\r\nHost: ${host}\r\n\r\n`;
const count = (paths: string[], path: string): number => paths.filter((p) => p === path).length;

describe('an upstream answer whose chunked body is malformed', () => {
  const procs = new Processes();
  let app: Awaited<ReturnType<typeof startRawApp>>;
  let web: SpawnedSidecar;
  let plainWeb: SpawnedSidecar;
  let catalog: SpawnedSidecar;

  beforeAll(async () => {
    app = await startRawApp();
    ({ web, plainWeb, catalog } = await startBodyTestSidecars(procs, app, ['direct'], { timeout: '1s', retries: { attempts: 2, backoff: { base: '1ms', max: '5ms' } } }));
  });

  afterAll(async () => {
    await procs.killAll();
    await app.close();
  });

  /** What `sc`'s `skein_requests_total{direction, destination}` of each code grew by since `before`. */
  const counted = async (sc: SpawnedSidecar, labels: Record<string, string>, before: Awaited<ReturnType<typeof scrape>>): Promise<(code: string) => number> => {
    const after = await scrape(sc);
    return (code) => metric(after, 'skein_requests_total', { ...labels, code }) - metric(before, 'skein_requests_total', { ...labels, code });
  };

  for (const [path, service, sidecar, peer] of [
    ['to a plain endpoint', 'direct', () => plainWeb, () => null],
    // catalog's sidecar framed the app's head to web's at once: it can only cut that stream (counted 503 there too).
    ['through the mux to a peer sidecar', 'catalog', () => web, () => catalog],
  ] as const) {
    it(`answers 503 retries-exhausted saying why when nothing had reached the caller, ${path}, counted as 503`, async () => {
      const sc = sidecar();
      const codes = { direction: 'outbound', destination: service };
      const before = await scrape(sc);
      const peerBefore = peer() === null ? null : await scrape(peer()!);
      const tried = count(app.paths, '/bad-body');
      const answer = await rawExchange(sc.outboundPort, request('/bad-body', service), /\r\n\r\n[^\n]*\n/);
      expect(answer).toMatch(/^HTTP\/1.1 503 /);
      expect(answer).toMatch(/x-skein-reason: retries-exhausted/i);
      expect(answer).toMatch(/malformed response from http:\/\/127\.0\.0\.1:\d+: .*\(HPE_INVALID_CHUNK_SIZE\)/);
      // Retried as a reset (a GET, two retries): three tries reached the app.
      expect(count(app.paths, '/bad-body') - tried).toBe(3);
      const delta = await counted(sc, codes, before);
      expect(delta('503')).toBe(1);
      expect(delta('200')).toBe(0);
      const after = await scrape(sc);
      expect(metric(after, 'skein_retries_total', { destination: service, reason: 'reset' }) - metric(before, 'skein_retries_total', { destination: service, reason: 'reset' })).toBe(2);
      if (peerBefore !== null) {
        const inbound = await counted(peer()!, { direction: 'inbound' }, peerBefore);
        expect(inbound('503')).toBe(3);
        expect(inbound('200')).toBe(0);
      }
      // The next request is served as usual.
      expect(await rawExchange(sc.outboundPort, request('/ok', service), /\r\n\r\nok$/)).toMatch(/^HTTP\/1.1 200 /);
    });

    it(`answers 504 timeout when the route's timeout passes after the head but before any body byte, ${path}, counted as 504`, async () => {
      const sc = sidecar();
      const before = await scrape(sc);
      const answer = await rawExchange(sc.outboundPort, request('/head-then-stall', service), /\r\n\r\n[^\n]*\n/);
      expect(answer).toMatch(/^HTTP\/1.1 504 /);
      expect(answer).toMatch(/x-skein-reason: timeout/i);
      const delta = await counted(sc, { direction: 'outbound', destination: service }, before);
      expect(delta('504')).toBe(1);
      expect(delta('200')).toBe(0);
    });

    it(`cuts the caller's response once body bytes went out, ${path}, counted as 503 and not retried`, async () => {
      const sc = sidecar();
      const codes = { direction: 'outbound', destination: service };
      const before = await scrape(sc);
      const peerBefore = peer() === null ? null : await scrape(peer()!);
      const tried = count(app.paths, '/bad-after-data');
      const answer = await rawExchange(sc.outboundPort, request('/bad-after-data', service), undefined, 10_000);
      expect(answer).toMatch(/^HTTP\/1.1 200 /);
      expect(answer).toContain('a'.repeat(1000));
      // Truncated: the connection closed without the last chunk, and nothing else came after the body.
      expect(answer).not.toMatch(/\r\n0\r\n\r\n$/);
      expect(answer).not.toMatch(/x-skein-reason/i);
      expect(count(app.paths, '/bad-after-data') - tried).toBe(1);
      const delta = await counted(sc, codes, before);
      expect(delta('200')).toBe(0);
      expect(delta('503')).toBe(1);
      if (peerBefore !== null) {
        const inbound = await counted(peer()!, { direction: 'inbound' }, peerBefore);
        expect(inbound('503')).toBe(1);
        expect(inbound('200')).toBe(0);
      }
    });
  }

  it('resets an HTTP/2 caller\'s stream, whose head went out at once, and counts 503', async () => {
    const before = await scrape(plainWeb);
    const session = connectH2(`http://127.0.0.1:${plainWeb.outboundPort}`);
    session.on('error', () => {});
    const outcome = await new Promise<{ status?: number; error?: string; ended: boolean }>((resolve) => {
      const stream = session.request({ ':path': '/bad-after-data', ':authority': 'direct' });
      let status: number | undefined;
      stream.on('response', (h) => (status = Number(h[':status'])));
      stream.on('data', () => {});
      stream.on('error', (err) => resolve({ status, error: err.message, ended: false }));
      stream.on('end', () => resolve({ status, ended: true }));
    });
    session.close();
    expect(outcome.status).toBe(200);
    expect(outcome.ended, JSON.stringify(outcome)).toBe(false);
    const delta = await counted(plainWeb, { direction: 'outbound', destination: 'direct' }, before);
    expect(delta('200')).toBe(0);
    expect(delta('503')).toBe(1);
  });
});
