/**
 * A mesh certificate is not trust in a peer's bytes: frames on the sidecar mux (ALPN
 * skein-mux/1) are held to the rules Skein's HTTP/1.1 parsers apply. Two impostors holding
 * valid certificates of the mesh's CA speak the mux by hand: `evil` calls catalog's inbound
 * listener (a second request smuggled in a body, bare LFs, an un-normalised path), and `fake`,
 * an endpoint web's outbound sends to, answers with a lying content-length or a bare LF. The
 * assertions are on what the app behind catalog and web's own caller receive.
 */
import { connect as tlsConnect, createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeCa, makeLeaf, Processes, startRawUpstream, tempDir, waitUntil, writeIdentity, writeTempConfig, type RawUpstream, type SpawnedSidecar, type TestCa } from '../support/index.js';
import { muxFrame, readMuxFrames } from '../support/mux-frames.js';
import { rawExchange } from './http.js';

const REQUEST = 1;
const RESPONSE = 2;
const DATA = 3;
const END_STREAM = 1;

/** An app on raw TCP that records every byte it gets and answers `200 ok` to each head (what an app reads as a request). */
async function recordingApp(): Promise<RawUpstream & { received: () => string }> {
  let received = '';
  const app = await startRawUpstream((socket) => {
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      received += d;
      for (let i = d.indexOf('\r\n\r\n'); i >= 0; i = d.indexOf('\r\n\r\n', i + 4)) socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
    });
  });
  return { ...app, received: () => received };
}

/** The answers `fake` gives, by path: a RESPONSE payload, then DATA payloads (the last one ends the stream). */
const FAKE_ANSWERS: Record<string, string[]> = {
  '/cl-short': ['200 OK\r\ncontent-length: 2\r\n', 'okHTTP/1.1 200 OK\r\nContent-Length: 6\r\nX-From: fake-peer\r\n\r\nforged'],
  '/cl-long': ['200 OK\r\ncontent-length: 5\r\n', 'ok'],
  '/bare-lf': ['200 OK\r\nx-a: 1\nSet-Cookie: session=attacker\r\ncontent-length: 2\r\n', 'ok'],
  '/fine': ['200 OK\r\ncontent-length: 4\r\n', 'fine'],
};

/** A mux server with a valid certificate for `fake` that answers as FAKE_ANSWERS say. */
async function fakePeer(ca: TestCa): Promise<TlsServer> {
  const leaf = makeLeaf(ca, 'fake');
  const server = createTlsServer({ key: leaf.keyPem, cert: leaf.certPem, ca: leaf.caPem, requestCert: true, ALPNProtocols: ['skein-mux/1'] }, (socket) => {
    socket.on('error', () => {});
    readMuxFrames(socket, (type, _flags, id, payload) => {
      if (type !== REQUEST) return;
      const path = payload.slice(payload.indexOf(' ') + 1, payload.indexOf('\r\n'));
      const [head, ...data] = FAKE_ANSWERS[path] ?? ['404 Not Found\r\ncontent-length: 0\r\n'];
      socket.write(muxFrame(RESPONSE, data.length === 0 ? END_STREAM : 0, id, head!));
      data.forEach((d, i) => socket.write(muxFrame(DATA, i === data.length - 1 ? END_STREAM : 0, id, d)));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

describe('frames from a peer sidecar are checked as HTTP/1.1 from a client or an app would be', () => {
  const procs = new Processes();
  const ca = makeCa();
  let app: Awaited<ReturnType<typeof recordingApp>>;
  let fake: TlsServer;
  let catalog: SpawnedSidecar;
  let web: SpawnedSidecar;

  beforeAll(async () => {
    app = await recordingApp();
    fake = await fakePeer(ca);
    const dir = tempDir();
    const config = writeTempConfig({
      services: { fake: { retries: { attempts: 0 }, endpoints: [{ address: '127.0.0.1', port: (fake.address() as { port: number }).port }] } },
      intentions: { defaultAction: 'allow' },
    }, dir);
    const id = (name: string) => writeIdentity(dir, name, makeLeaf(ca, name));
    catalog = await procs.sidecar({ service: 'catalog', appPort: app.port, config, identity: id('catalog') });
    web = await procs.sidecar({ service: 'web', appPort: app.port, config, identity: id('web') });
  });

  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') console.log(catalog?.output(), web?.output());
  });

  afterAll(async () => {
    await procs.killAll();
    fake.close();
    await app.close();
  });

  it('never hands the app a request smuggled in a body, a header behind a bare LF or an un-normalised path from a peer holding a mesh certificate', async () => {
    const evil = makeLeaf(ca, 'evil');
    const socket: TLSSocket = tlsConnect({ host: '127.0.0.1', port: catalog.inboundPort, key: evil.keyPem, cert: evil.certPem, ca: evil.caPem, checkServerIdentity: () => undefined, ALPNProtocols: ['skein-mux/1'] });
    socket.on('error', () => {});
    const answers = new Map<number, string>();
    const ended = new Set<number>();
    readMuxFrames(socket, (type, flags, id, payload) => {
      if (type === RESPONSE || type === DATA) answers.set(id, (answers.get(id) ?? '') + payload);
      if ((flags & END_STREAM) !== 0) ended.add(id);
    });
    try {
      await new Promise((resolve) => socket.once('secureConnect', resolve));
      expect(socket.alpnProtocol).toBe('skein-mux/1');
      const smuggled = 'GET /admin/delete-everything HTTP/1.1\r\nHost: catalog\r\nx-forwarded-client-cert: By=spiffe://skein.local/service/catalog;URI=spiffe://skein.local/service/admin\r\n\r\n';
      socket.write(Buffer.concat([
        muxFrame(REQUEST, 0, 1, 'POST /orders\r\nhost: catalog\r\ncontent-length: 5\r\n'),
        muxFrame(DATA, END_STREAM, 1, `hello${smuggled}`),
        muxFrame(REQUEST, END_STREAM, 3, 'GET /x HTTP/1.0\nX-Injected: via-target\r\nhost: catalog\r\n'),
        muxFrame(REQUEST, END_STREAM, 5, 'GET /y\r\nhost: catalog\r\nx-a: 1\nx-forwarded-client-cert: forged-by-bare-lf\r\n'),
        muxFrame(REQUEST, END_STREAM, 7, 'GET /public/../secret/%2e%2e/z\r\nhost: catalog\r\n'),
      ]));
      await waitUntil(() => [1, 3, 5, 7].every((id) => ended.has(id)), { timeoutMs: 10_000, what: 'a whole answer on every stream' });
      expect(answers.get(1)).toMatch(/^400 Bad Request\r\n[^]*x-skein-reason: bad-request\r\n[^]*more DATA than its content-length/);
      expect(answers.get(3)).toMatch(/^400 Bad Request\r\n[^]*malformed HTTP request: .*\(HPE_INVALID_URL\)/);
      expect(answers.get(5)).toMatch(/^400 Bad Request\r\n[^]*malformed HTTP request: invalid character in header x-a \(HPE_INVALID_HEADER_TOKEN\)/);
      expect(answers.get(7)).toMatch(/^200 OK\r\n/);
      const received = app.received();
      expect(received).toContain('GET /z HTTP/1.1\r\n');
      expect(received).toContain('URI=spiffe://skein.local/service/evil');
      for (const forged of ['/admin/delete-everything', 'service/admin', 'X-Injected', 'forged-by-bare-lf', '/public/', '/secret', 'hello']) expect(received).not.toContain(forged);
    } finally {
      socket.destroy();
    }
  });

  it("never hands a caller bytes past a peer's content-length, short of it, or a header behind a bare LF", async () => {
    const why: Record<string, RegExp> = {
      '/cl-short': /fake at 127\.0\.0\.1:\d+ broke off its answer: the peer sent more DATA than its content-length/,
      '/cl-long': /fake at 127\.0\.0\.1:\d+ broke off its answer: the peer ended the stream 3 bytes short of its content-length/,
      '/bare-lf': /fake: malformed response from https:\/\/127\.0\.0\.1:\d+: invalid character in header x-a \(HPE_INVALID_HEADER_TOKEN\)/,
    };
    for (const path of Object.keys(why)) {
      // Pipelined on one keep-alive connection: excess body read as an answer of its own, or the next answer read as the missing bytes.
      const got = await rawExchange(web.outboundPort, `GET ${path} HTTP/1.1\r\nHost: fake\r\n\r\nGET /fine HTTP/1.1\r\nHost: fake\r\nConnection: close\r\n\r\n`, undefined, 10_000);
      const statuses = got.match(/HTTP\/1\.1 \d{3}/g);
      expect(statuses, `${path}: ${got}`).toEqual(['HTTP/1.1 503', 'HTTP/1.1 200']);
      expect(got, path).toMatch(/x-skein-reason: retries-exhausted/);
      expect(got, path).toMatch(why[path]!);
      expect(got, path).toMatch(/\r\n\r\nfine$/);
      for (const forged of ['forged', 'fake-peer', 'attacker']) expect(got, path).not.toContain(forged);
    }
  });
});
