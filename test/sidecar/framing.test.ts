/**
 * How the sidecar reads the framing of HTTP/1.1 messages from callers and apps (README "Bad
 * input"): a chunked body's trailer section is bounded like a head (64 KiB) and its lines
 * checked like head lines, on a caller's request, an app's answer (to a plain endpoint and
 * through the mux) and the answer of a declined WebSocket upgrade; fields no trailer may
 * carry (Content-Length, Host, …) are dropped; an HTTP/1.0 message with a Transfer-Encoding
 * closes its connection; Connection never names Host away; and a Transfer-Encoding without
 * chunked is told as such (refused in a request, read to the close in an answer).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Processes, startRawUpstream, type RawUpstream, type SpawnedSidecar } from '../support/index.js';
import { startBodyTestSidecars, type BodyTestSidecars } from './body-fixture.js';
import { endingOf, rawExchange } from './http.js';

const CHUNKED = 'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n';
/** Trailer lines far past the 64 KiB limit, none of them long. */
const FLOOD = 'x:y\r\n'.repeat(20_000);

/** What the raw app answers, by path; its socket is left open when the answer does not end it. */
const ANSWERS: Record<string, string> = {
  '/trailers': `${CHUNKED}2\r\nok\r\n0\r\nX-Checksum: abc\r\nContent-Length: 99\r\nHost: evil\r\nTransfer-Encoding: chunked\r\nx-two: 2\r\n\r\n`,
  '/trailer-cr': `${CHUNKED}0\r\nX-T: a\rInjected: b\r\n\r\n`,
  '/trailer-name': `${CHUNKED}0\r\nBad Name : v\r\n\r\n`,
  '/trailer-flood': `${CHUNKED}0\r\n${FLOOD}`,
  '/gzip-to-close': 'HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\nRAWBYTES',
  /** A chunked answer whose app closes before its last chunk. */
  '/cut-chunked': 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n',
  '/dated': 'HTTP/1.1 200 OK\r\nDate: Tue, 01 Dec 2026 10:00:00 GMT\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok',
};
/** Paths whose answer the app ends by closing its connection (it answers one request per connection). */
const CLOSING = new Set(['/gzip-to-close', '/cut-chunked', '/dated']);

/**
 * A raw TCP app: answers each request (once its chunked body, if any, has ended) by path from
 * ANSWERS, `/echo-head` with the request head it got, any other (`/health`) 200; keeps every head it got.
 */
async function startRawApp(): Promise<RawUpstream & { heads: string[] }> {
  const heads: string[] = [];
  const app = await startRawUpstream((socket) => {
    let data = '';
    let answered = false;
    socket.on('data', (d: Buffer) => {
      data += d.toString('latin1');
      const end = data.indexOf('\r\n\r\n');
      if (answered || end < 0) return;
      const head = data.slice(0, end);
      if (/\r\ntransfer-encoding: chunked/i.test(head) && !data.endsWith('\r\n0\r\n\r\n')) return;
      answered = true;
      heads.push(head);
      const path = head.split(' ')[1]!;
      if (CLOSING.has(path)) socket.end(ANSWERS[path]);
      else if (path === '/echo-head') socket.end(`HTTP/1.1 200 OK\r\ncontent-length: ${head.length}\r\nconnection: close\r\n\r\n${head}`);
      else if (ANSWERS[path] !== undefined) socket.write(ANSWERS[path]);
      else socket.end('HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok');
    });
  });
  return { ...app, heads };
}

/** The last-chunk line and trailer section of a chunked answer, `null` when it has none (it was cut). */
function trailerSection(answer: string): string | null {
  const m = /\r\n0\r\n((?:[^\r\n]+\r\n)*)\r\n$/.exec(answer);
  return m === null ? null : m[1]!;
}

describe('message framing: trailers, HTTP/1.0 with Transfer-Encoding, Connection, transfer codings', () => {
  const procs = new Processes();
  let app: Awaited<ReturnType<typeof startRawApp>>;
  /** `web` calls `catalog` (the app behind its sidecar) over the mux, `plainWeb` calls `direct` (the app itself). */
  let sidecars: BodyTestSidecars;

  beforeAll(async () => {
    app = await startRawApp();
    sidecars = await startBodyTestSidecars(procs, app, ['direct'], { timeout: '3s', retries: { attempts: 0 } });
  });

  afterEach((ctx) => {
    if (ctx.task.result?.state !== 'fail') return;
    for (const [name, sc] of Object.entries(sidecars ?? {})) console.log(`--- ${name} ---\n${(sc as SpawnedSidecar).output()}`);
  });

  afterAll(async () => {
    await procs.killAll();
    await app.close();
  });

  const post = (path: string, host: string, body: string, version = '1.1', extra = ''): string => `POST ${path} HTTP/${version}\r\nHost: ${host}\r\n${extra}Transfer-Encoding: chunked\r\n\r\n${body}`;

  describe("a caller's request trailers", () => {
    it('answers endless trailer lines 431 bad-request once they pass 64 KiB, without sending the request on whole', async () => {
      // The inbound sidecar's health checks (GET /health, once a second) reach the app meanwhile.
      const echoes = (): number => app.heads.filter((h) => h.startsWith('POST /echo-head')).length;
      const seen = echoes();
      const answer = await rawExchange(sidecars.plainWeb.outboundPort, post('/echo-head', 'direct', `5\r\nhello\r\n0\r\n${FLOOD}`));
      expect(answer).toMatch(/^HTTP\/1.1 431 /);
      expect(answer).toMatch(/x-skein-reason: bad-request/i);
      expect(answer).toMatch(/trailers exceed 65536 bytes \(HPE_HEADER_OVERFLOW\)/);
      // The body never ended: the app, which answers only at its end, answered nothing.
      expect(echoes()).toBe(seen);
    });

    it('answers a malformed trailer line 400 bad-request, as the same line in the head would be', async () => {
      for (const line of ['X-T: a\rb', 'Bad Name: v', 'X-T: a\x00b']) {
        const answer = await rawExchange(sidecars.plainWeb.outboundPort, post('/echo-head', 'direct', `5\r\nhello\r\n0\r\n${line}\r\n\r\n`));
        expect(answer, JSON.stringify(line)).toMatch(/^HTTP\/1.1 400 /);
        expect(answer).toMatch(/malformed request body: .*\(HPE_INVALID_HEADER_TOKEN\)/);
      }
      // Well-formed ones are read and dropped, as before.
      const answer = await rawExchange(sidecars.plainWeb.outboundPort, post('/echo-head', 'direct', '5\r\nhello\r\n0\r\nX-Checksum: abc\r\n\r\n', '1.1', 'Connection: close\r\n'));
      expect(answer).toMatch(/^HTTP\/1.1 200 /);
    });
  });

  for (const [path, service, sidecar] of [
    ['to a plain endpoint', 'direct', () => sidecars.plainWeb],
    ['through the mux to a peer sidecar', 'catalog', () => sidecars.web],
  ] as const) {
    describe(`an app's answer: trailers and framing, ${path}`, () => {
      it('passes well-formed trailer fields on and drops those no trailer may carry (Content-Length, Host, Transfer-Encoding)', async () => {
        const answer = await rawExchange(sidecar().outboundPort, `GET /trailers HTTP/1.1\r\nHost: ${service}\r\n\r\n`, /\r\n0\r\n(?:[^\r\n]+\r\n)*\r\n$/);
        expect(answer).toMatch(/^HTTP\/1.1 200 /);
        expect(trailerSection(answer)).toBe('x-checksum: abc\r\nx-two: 2\r\n');
      });

      it('treats malformed trailer lines or endless ones as a malformed answer: 503 retries-exhausted saying why, none of it passed on', async () => {
        for (const [trailerPath, code] of [['/trailer-cr', 'HPE_INVALID_HEADER_TOKEN'], ['/trailer-name', 'HPE_INVALID_HEADER_TOKEN'], ['/trailer-flood', 'HPE_HEADER_OVERFLOW']]) {
          const answer = await rawExchange(sidecar().outboundPort, `GET ${trailerPath} HTTP/1.1\r\nHost: ${service}\r\nConnection: close\r\n\r\n`);
          expect(answer, trailerPath).toMatch(/^HTTP\/1.1 503 /);
          expect(answer).toMatch(/x-skein-reason: retries-exhausted/i);
          expect(answer).toContain(`(${code})`);
          expect(answer).not.toContain('Injected');
        }
      });

      it('resets the connection of an HTTP/1.0 caller whose answer, sent to it close-delimited, the app cut: a plain close would say it was whole', async () => {
        const cut = await endingOf(sidecar().outboundPort, `GET /cut-chunked HTTP/1.0\r\nHost: ${service}\r\n\r\n`);
        expect(cut.data).toMatch(/^(HTTP\/1.1 200 |$)/);
        expect(cut.data).not.toMatch(/transfer-encoding/i);
        expect(cut.reset, JSON.stringify(cut)).toBe(true);
        // A whole close-delimited answer ends with a plain close.
        expect(await endingOf(sidecar().outboundPort, `GET /gzip-to-close HTTP/1.0\r\nHost: ${service}\r\n\r\n`)).toMatchObject({ reset: false, data: expect.stringMatching(/\r\n\r\nRAWBYTES$/) });
        // An HTTP/1.1 caller's chunked answer tells by its missing last chunk.
        const answer = await rawExchange(sidecar().outboundPort, `GET /cut-chunked HTTP/1.1\r\nHost: ${service}\r\n\r\n`);
        expect(answer).toMatch(/^HTTP\/1.1 200 [^]*\r\n\r\n5\r\nhello\r\n$/);
      });

      it('adds a Date to an answer without one, and keeps the one an answer has (RFC 9110 §6.6.1)', async () => {
        const undated = await rawExchange(sidecar().outboundPort, `GET /plain HTTP/1.1\r\nHost: ${service}\r\nConnection: close\r\n\r\n`);
        expect(undated).toMatch(/^HTTP\/1.1 200 /);
        const date = /\r\ndate: ([^\r]+)\r\n/i.exec(undated)?.[1];
        expect(Math.abs(Date.parse(date ?? '') - Date.now())).toBeLessThan(5000);
        const dated = await rawExchange(sidecar().outboundPort, `GET /dated HTTP/1.1\r\nHost: ${service}\r\n\r\n`, /\r\n\r\nok$/);
        expect(dated.match(/\r\ndate: /gi)).toHaveLength(1);
        expect(dated).toMatch(/\r\nDate: Tue, 01 Dec 2026 10:00:00 GMT\r\n/);
      });

      it("reads an answer whose Transfer-Encoding does not end in chunked to the connection's close, its coding passed on", async () => {
        const answer = await rawExchange(sidecar().outboundPort, `GET /gzip-to-close HTTP/1.1\r\nHost: ${service}\r\nConnection: close\r\n\r\n`);
        expect(answer).toMatch(/^HTTP\/1.1 200 /);
        expect(answer).toMatch(/\r\ntransfer-encoding: gzip\r\n/i);
        expect(answer).toMatch(/\r\n\r\n8\r\nRAWBYTES\r\n0\r\n\r\n$/);
      });
    });
  }

  describe('the answer to a declined WebSocket upgrade', () => {
    const upgrade = (path: string): string => `GET ${path} HTTP/1.1\r\nHost: direct\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: MDEyMzQ1Njc4OWFiY2RlZg==\r\nSec-WebSocket-Version: 13\r\n\r\n`;

    it('is chunked anew: its well-formed trailer fields pass, those no trailer may carry do not', async () => {
      const answer = await rawExchange(sidecars.plainWeb.outboundPort, upgrade('/trailers'));
      expect(answer).toMatch(/^HTTP\/1.1 200 /);
      // Dated, as every answer the sidecar forwards without a Date.
      expect(answer).toMatch(/\r\ndate: \w{3}, \d{2} \w{3} \d{4} [\d:]{8} GMT\r\n/);
      expect(answer).toMatch(/\r\n\r\n2\r\nok\r\n0\r\n/);
      expect(trailerSection(answer)).toBe('X-Checksum: abc\r\nx-two: 2\r\n');
    });

    it('is cut at malformed or endless trailer lines, none of them passed on', async () => {
      for (const path of ['/trailer-cr', '/trailer-name', '/trailer-flood']) {
        const answer = await rawExchange(sidecars.plainWeb.outboundPort, upgrade(path));
        expect(answer, path).toMatch(/^HTTP\/1.1 200 /);
        expect(trailerSection(answer), path).toBeNull();
        expect(answer).not.toMatch(/Injected|Bad Name|x:y/);
      }
    });
  });

  it('closes the connection after an HTTP/1.0 request with a Transfer-Encoding, serving nothing pipelined behind it (RFC 9112 §6.1)', async () => {
    const answer = await rawExchange(
      sidecars.plainWeb.outboundPort,
      `${post('/echo-head', 'direct', '5\r\nhello\r\n0\r\n\r\n', '1.0', 'Connection: keep-alive\r\n')}GET /echo-head?after HTTP/1.0\r\nHost: direct\r\nConnection: keep-alive\r\n\r\n`,
    );
    expect(answer).toMatch(/^HTTP\/1.1 200 /);
    expect(answer).toMatch(/\r\nconnection: close\r\n/i);
    expect(answer.match(/HTTP\/1.1 /g)).toHaveLength(1);
    expect(app.heads.some((h) => h.startsWith('GET /echo-head?after'))).toBe(false);
  });

  it('sends the Host on when Connection names it (or Content-Length), never the sidecar\'s address of the app', async () => {
    for (const [sc, service] of [[sidecars.plainWeb, 'direct'], [sidecars.web, 'catalog']] as const) {
      const answer = await rawExchange(sc.outboundPort, `GET /echo-head HTTP/1.1\r\nHost: ${service}\r\nConnection: host, content-length, x-hop, close\r\nX-Hop: 1\r\n\r\n`);
      const got = answer.slice(answer.indexOf('\r\n\r\n') + 4);
      expect(got, service).toMatch(new RegExp(`\\r\\nHost: ${service}\\r\\n`, 'i'));
      expect(got).not.toMatch(/\r\nhost: 127\.0\.0\.1/i);
      expect(got).not.toMatch(/x-hop/i);
    }
  });

  it('refuses a request whose Transfer-Encoding has no chunked, saying so', async () => {
    for (const te of ['xchunked', 'chunked, identity']) {
      const answer = await rawExchange(sidecars.plainWeb.outboundPort, `POST /echo-head HTTP/1.1\r\nHost: direct\r\nTransfer-Encoding: ${te}\r\n\r\n0\r\n\r\n`);
      expect(answer, te).toMatch(/^HTTP\/1.1 400 /);
      expect(answer).toContain('transfer-encoding does not end in chunked');
    }
  });
});
