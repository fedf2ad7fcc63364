/**
 * What a client may leave unused or abuse on a listener, with the limits made short: a TCP
 * connection that never sends a byte (or never finishes its TLS handshake) is closed, an
 * HTTP/2 session with no stream open is sent GOAWAY, and neither limit touches a connection in
 * use (a keep-alive HTTP/1.1 connection, a quiet HTTP/2 stream longer than the limit); a
 * session whose client makes the server reset most of its streams ("MadeYouReset") is ended.
 * Real sockets and a real node:http2 client.
 */
import { connect as h2connect, constants, type ClientHttp2Session } from 'node:http2';
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { clientHello, makeCa, makeLeaf, waitUntil } from '../test/support/index.js';
import type { ProxyRequest, ProxyResponse } from './exchange.js';
import { refusalLabel } from './h2-refusal.js';
import { ProxyListener } from './listeners.js';
import { REQUEST_HEAD_BYTES } from './options.js';

const SILENT_MS = 300;
const H2_IDLE_MS = 400;

let listener: ProxyListener | undefined;
/** Requests to /hold wait here until the test answers them. */
let held: ProxyResponse[] = [];
/** Requests handed on, as the app would get them. */
let served = 0;
/** Statuses counted as malformed, and the targets of tunnels closed for TLS in them. */
let malformed: number[] = [];
let tlsTunnels: string[] = [];

afterEach(async () => {
  await listener?.close(0);
  listener = undefined;
  held = [];
  served = 0;
  malformed = [];
  tlsTunnels = [];
});

/** `admit` judges each TLS caller as the inbound's peer check does (undefined lets it in); `tunnels` takes CONNECT. */
async function start(tls = false, admit?: (socket: TLSSocket) => string | undefined, tunnels = false): Promise<number> {
  const leaf = tls ? makeLeaf(makeCa(), 'catalog') : undefined;
  listener = new ProxyListener({
    tls: leaf && { cert: leaf.certPem, key: leaf.keyPem },
    admit,
    onRequest: (req: ProxyRequest, res: ProxyResponse) => {
      served++;
      req.resume();
      if (req.url === '/hold') held.push(res);
      else if (req.url === '/host') {
        const host = String(req.headers.host ?? req.headers[':authority']);
        res.writeHead(200, { 'content-length': String(host.length) }) && res.end(host);
      }
      else res.writeHead(200, { 'content-length': '2' }) && res.end('ok');
    },
    onUpgrade: (_req, socket) => socket.destroy(),
    onMalformed: (status) => malformed.push(status),
    proxyName: 'skein-test-outbound',
    maxBodyBytes: 0,
    maxHeaderBytes: REQUEST_HEAD_BYTES.default,
    limits: { silentMs: SILENT_MS, h2IdleMs: H2_IDLE_MS },
    tunnels: tunnels ? { onTls: (target) => tlsTunnels.push(target) } : undefined,
  });
  return listener.listen(0, '127.0.0.1');
}

const closed = (socket: Socket): Promise<number> => {
  const started = performance.now();
  return new Promise((resolve) => socket.once('close', () => resolve(performance.now() - started)));
};

function h2get(session: ClientHttp2Session, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':path': path, ':authority': 'catalog' });
    req.on('response', (h) => resolve(Number(h[':status'])));
    req.on('error', reject);
    req.resume();
  });
}

describe('connection limits on a listener', () => {
  it('closes a connection that sends no byte within the silent limit', async () => {
    const port = await start();
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    const ms = await closed(socket);
    expect(ms).toBeGreaterThanOrEqual(SILENT_MS - 20);
    expect(ms).toBeLessThan(SILENT_MS + 2_000);
  });

  it('keeps an HTTP/1.1 connection that sent a request past the silent limit', async () => {
    const port = await start();
    const socket = connect(port, '127.0.0.1');
    const answers: string[] = [];
    socket.on('data', (d: Buffer) => answers.push(d.toString('latin1')));
    const request = 'GET /a HTTP/1.1\r\nHost: catalog\r\n\r\n';
    socket.write(request);
    await waitUntil(() => answers.join('').includes('ok'), { what: 'the first answer' });
    // Waiting is the point here: past the silent limit, the connection must still serve.
    await sleep(SILENT_MS * 2);
    expect(socket.destroyed).toBe(false);
    socket.write(request);
    await waitUntil(() => answers.join('').split('200 OK').length === 3, { what: 'the second answer' });
    socket.destroy();
  });

  it('sends GOAWAY to an HTTP/2 session with no stream open for the idle limit, then closes it', async () => {
    const port = await start();
    const session = h2connect(`http://127.0.0.1:${port}`);
    session.on('error', () => undefined);
    const started = performance.now();
    expect(await h2get(session, '/a')).toBe(200);
    const code = await new Promise<number>((resolve) => session.once('goaway', resolve));
    expect(code).toBe(constants.NGHTTP2_NO_ERROR);
    const goawayAt = performance.now();
    expect(goawayAt - started).toBeGreaterThanOrEqual(H2_IDLE_MS - 20);
    await new Promise((resolve) => session.once('close', resolve));
    // One GOAWAY, not a drain's two: node reads nothing more on an idle session once it has
    // sent one, so a second step would wait 2 s for a PING answer it never reads.
    expect(performance.now() - goawayAt).toBeLessThan(1_000);
  });

  it('never counts a quiet open HTTP/2 stream as idle, and counts from when the last one ended', async () => {
    const port = await start();
    const session = h2connect(`http://127.0.0.1:${port}`);
    let goaway = false;
    session.on('goaway', () => (goaway = true));
    const answer = h2get(session, '/hold');
    await waitUntil(() => held.length === 1, { what: 'the held request' });
    // A stream open three idle limits long, with nothing on the wire.
    await sleep(H2_IDLE_MS * 3);
    expect(goaway).toBe(false);
    held[0]!.writeHead(200);
    held[0]!.end();
    expect(await answer).toBe(200);
    const ended = performance.now();
    await waitUntil(() => goaway, { what: 'GOAWAY' });
    expect(performance.now() - ended).toBeGreaterThanOrEqual(H2_IDLE_MS - 20);
    session.destroy();
  });

  it('closes a TLS connection that sends nothing, or half a ClientHello, within the silent limit', async () => {
    const port = await start(true);
    const silent = connect(port, '127.0.0.1');
    const half = connect(port, '127.0.0.1', () => half.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01])));
    for (const s of [silent, half]) s.on('error', () => undefined);
    const [a, b] = await Promise.all([closed(silent), closed(half)]);
    for (const ms of [a, b]) expect(ms).toBeLessThan(SILENT_MS + 2_000);
    // A client that does its handshake is served.
    const ok = tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
    const answer = await new Promise<string>((resolve) => {
      let text = '';
      ok.on('secureConnect', () => ok.write('GET /a HTTP/1.1\r\nHost: catalog\r\nConnection: close\r\n\r\n'));
      ok.on('data', (d: Buffer) => (text += d.toString('latin1')));
      ok.on('close', () => resolve(text));
    });
    expect(answer).toMatch(/^HTTP\/1.1 200 /);
  });

  it('ends with ENHANCE_YOUR_CALM an HTTP/2 session whose client makes the server reset most of its streams, and keeps another', async () => {
    const port = await start();
    const good = h2connect(`http://127.0.0.1:${port}`);
    const bad = h2connect(`http://127.0.0.1:${port}`);
    for (const s of [good, bad]) s.on('error', () => undefined);
    // The good session keeps a stream open through the flood, which on a busy machine can take
    // longer than the idle limit that would otherwise close it.
    const kept = h2get(good, '/hold');
    await waitUntil(() => held.length === 1, { what: "the good session's held request" });
    const keptAnswer = held[0]!;
    const goaway = new Promise<number>((resolve) => bad.once('goaway', resolve));
    // A body longer than its content-length: nghttp2 resets the stream itself, a reset node's
    // rapid-reset limit (which counts the client's RST_STREAM frames) never sees.
    let sent = 0;
    while (!bad.closed && !bad.destroyed && sent < 5_000) {
      const req = bad.request({ ':method': 'POST', ':path': '/hold', ':authority': 'catalog', 'content-length': '1' });
      req.on('error', () => undefined);
      req.end('xx');
      if (++sent % 50 === 0) await sleep(1);
    }
    expect(await goaway).toBe(constants.NGHTTP2_ENHANCE_YOUR_CALM);
    expect(sent).toBeLessThan(5_000);
    keptAnswer.writeHead(200);
    keptAnswer.end();
    expect(await kept).toBe(200);
    expect(good.closed).toBe(false);
    good.destroy();
  });

  it('keeps an HTTP/2 session whose client cancels a minority of its streams', async () => {
    const port = await start();
    const session = h2connect(`http://127.0.0.1:${port}`);
    session.on('error', () => undefined);
    for (let i = 0; i < 600; i++) {
      if (i % 3 === 0) {
        const req = session.request({ ':path': '/hold', ':authority': 'catalog' });
        req.on('error', () => undefined);
        await waitUntil(() => held.length > 0, { what: 'the held request' });
        held.shift();
        req.close(constants.NGHTTP2_CANCEL);
      } else expect(await h2get(session, '/a')).toBe(200);
    }
    expect(await h2get(session, '/a')).toBe(200);
    expect(session.destroyed).toBe(false);
    session.destroy();
  });
});

describe('a TLS caller the listener refuses', () => {
  it('over HTTP/2 is told by a GOAWAY that took no stream, naming the reason alone; its streams are refused, never handed on', async () => {
    const port = await start(true, () => 'untrusted-certificate');
    const session = h2connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
    session.on('error', () => undefined);
    // Sent at once, not after the server's SETTINGS: it reaches a server that has refused the caller.
    const req = session.request({ ':path': '/a', ':authority': 'catalog' });
    req.on('error', () => undefined);
    const goAways: [number, number, Buffer | undefined][] = [];
    session.on('goaway', (code: number, lastStreamID: number, data?: Buffer) => goAways.push([code, lastStreamID, data]));
    const started = performance.now();
    await once(session, 'close');
    // The refusal ends the connection, and the listener lets go of it once the caller does; an
    // HTTP/2 session made to refuse it stopped reading and held it for the whole linger (5 s).
    expect(performance.now() - started).toBeLessThan(2_500);
    const [code, lastStreamID, data] = goAways[0] ?? [];
    expect(code).toBe(constants.NGHTTP2_NO_ERROR);
    expect(lastStreamID).toBe(0);
    expect(refusalLabel(0, data)).toBe('untrusted-certificate');
    expect(req.rstCode).toBe(constants.NGHTTP2_REFUSED_STREAM);
    expect(served).toBe(0);
  });
});

/** Opens a tunnel to `target` and resolves with its socket once `200 Connection Established` is read (and nothing past it). */
async function tunnel(port: number, target = 'catalog:80'): Promise<Socket> {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`);
  const [answer] = (await once(socket, 'data')) as [Buffer];
  expect(answer.toString('latin1')).toBe('HTTP/1.1 200 Connection Established\r\n\r\n');
  return socket;
}

describe('CONNECT tunnels on a listener that takes them', () => {
  it('serves the HTTP/1.1 requests a tunnel carries, the bytes sent with the CONNECT head first, routed by their own Host', async () => {
    const port = await start(false, undefined, true);
    const socket = connect(port, '127.0.0.1');
    let data = '';
    socket.on('data', (d: Buffer) => (data += d.toString('latin1')));
    socket.write('CONNECT catalog:80 HTTP/1.1\r\nHost: catalog:80\r\n\r\nGET /host HTTP/1.1\r\nHost: catalog\r\n\r\n');
    await waitUntil(() => data.endsWith('catalog'), { what: 'the first answer in the tunnel' });
    expect(data).toMatch(/^HTTP\/1.1 200 Connection Established\r\n\r\nHTTP\/1.1 200 OK\r\n/);
    socket.write('GET /host HTTP/1.1\r\nHost: other\r\n\r\n');
    await waitUntil(() => data.endsWith('other'), { what: 'the second answer, on the same tunnel' });
    expect(served).toBe(2);
    expect(malformed).toEqual([]);
    socket.destroy();
  });

  it('serves h2c with prior knowledge in a tunnel, by :authority', async () => {
    const port = await start(false, undefined, true);
    const socket = await tunnel(port);
    const session = h2connect('http://catalog', { createConnection: () => socket });
    const req = session.request({ ':path': '/host', ':authority': 'catalog' });
    let body = '';
    req.setEncoding('utf8').on('data', (d: string) => (body += d));
    const [headers] = (await once(req, 'response')) as [Record<string, string>];
    await once(req, 'end');
    expect([headers[':status'], body]).toEqual([200, 'catalog']);
    session.destroy();
  });

  it('closes unserved a tunnel whose client begins TLS, counted as malformed and told with its target', async () => {
    const port = await start(false, undefined, true);
    const socket = await tunnel(port, 'catalog:443');
    const done = closed(socket);
    socket.write(await clientHello());
    await done;
    expect(malformed).toEqual([400]);
    expect(tlsTunnels).toEqual(['catalog:443']);
    expect(served).toBe(0);
  });

  it('holds a tunnel to the silent limit, as any connection', async () => {
    const port = await start(false, undefined, true);
    const socket = await tunnel(port);
    const ms = await closed(socket);
    expect(ms).toBeLessThan(SILENT_MS + 2_000);
  });

  it('refuses a CONNECT to a target that is not host:port, or with a body, 400 and counted; and any CONNECT where tunnels are not taken', async () => {
    const refused = async (port: number, head: string): Promise<string> => {
      const socket = connect(port, '127.0.0.1');
      socket.on('error', () => undefined);
      let data = '';
      socket.on('data', (d: Buffer) => (data += d.toString('latin1')));
      socket.write(head);
      await closed(socket);
      return data;
    };
    let port = await start(false, undefined, true);
    expect(await refused(port, 'CONNECT /x HTTP/1.1\r\nHost: catalog\r\n\r\n')).toMatch(/^HTTP\/1.1 400 [^]*x-skein-reason: bad-request[^]*must be host:port/);
    expect(await refused(port, 'CONNECT catalog:80 HTTP/1.1\r\nHost: catalog\r\nContent-Length: 2\r\n\r\nab')).toMatch(/^HTTP\/1.1 400 [^]*x-skein-reason: bad-request[^]*ERR_SKEIN_CONNECT_BODY/);
    expect(malformed).toEqual([400, 400]);
    await listener!.close(0);
    port = await start();
    expect(await refused(port, 'CONNECT catalog:80 HTTP/1.1\r\nHost: catalog\r\n\r\n')).toMatch(/^HTTP\/1.1 400 [^]*CONNECT is not supported/);
    expect(malformed).toEqual([400, 400, 400]);
  });
});
