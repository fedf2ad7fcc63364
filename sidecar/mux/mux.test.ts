/**
 * The sidecar-to-sidecar mux, both ends, over real TLS connections on 127.0.0.1 (ALPN
 * skein-mux/1), with handlers of undici's callback API as the attempt loop has them.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { connect as tlsConnect, createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { makeCa, makeLeaf } from '../../test/support/certs.js';
import { recordingHandler, type Recorded } from '../../test/support/recording-handler.js';
import { socketConnector } from '../cluster/h2-upstream.js';
import type { Keepalive } from '../cluster/keepalive.js';
import type { CallControl, ControlledHandler } from '../cluster/upstream-dispatcher.js';
import { HttpParseError } from '../../common/http/parse-error.js';
import { ALPN, END_STREAM, FrameType, refusalFrame, WINDOW } from './frames.js';
import { MuxServerSession, type MuxRequest, type MuxResponse } from './server.js';
import { REQUEST_HEAD_BYTES } from '../options.js';
import { muxFrame, readMuxFrames } from '../../test/support/mux-frames.js';
import { waitUntil } from '../../test/support/wait.js';
import { TLS_HANDSHAKE_FAILED } from '../cluster/connect-phase.js';
import { MuxUpstream } from './upstream.js';

const ca = makeCa('Mux Test CA');
const serverLeaf = makeLeaf(ca, 'server');
/** A mux server's TLS: the server leaf, client certificates required, the mux ALPN. */
const SERVER_TLS = { key: serverLeaf.keyPem, cert: serverLeaf.certPem, ca: ca.certPem, requestCert: true, ALPNProtocols: [ALPN] };
const clientLeaf = makeLeaf(ca, 'client');

const recorder = (pauseAll = false): Recorded => recordingHandler(pauseAll ? Infinity : 0);

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

interface Fixture {
  readonly upstream: MuxUpstream;
  readonly sockets: TLSSocket[];
  readonly sessions: MuxServerSession[];
  readonly port: number;
  /** Request heads the server refused (answered 400 with the error's code in `x-code`). */
  readonly refused: HttpParseError[];
}

/** A TLS server speaking the mux, answering with `onRequest`, and an upstream to it. */
interface FixtureOptions {
  readonly keepalive?: Keepalive;
  readonly clientMaxStreams?: number;
  readonly serverMaxStreams?: number;
  /** The server's `--max-request-headers` (default: its default). */
  readonly serverMaxHeaderBytes?: number;
}

async function fixture(onRequest: (req: MuxRequest, res: MuxResponse) => void, o: FixtureOptions = {}): Promise<Fixture> {
  const sockets: TLSSocket[] = [];
  const sessions: MuxServerSession[] = [];
  const refused: HttpParseError[] = [];
  const server: TlsServer = createTlsServer(SERVER_TLS, (socket) => {
    sockets.push(socket);
    const clientError = (err: HttpParseError, res: MuxResponse): void => {
      refused.push(err);
      res.writeHead(400, ['x-code', err.code, 'content-length', '0']);
      res.end();
    };
    sessions.push(new MuxServerSession(socket, { request: onRequest, clientError }, () => {}, o.serverMaxHeaderBytes ?? REQUEST_HEAD_BYTES.default, 0, o.serverMaxStreams));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const upstream = new MuxUpstream(
    `https://127.0.0.1:${port}`,
    muxConnector(port),
    o.keepalive,
    o.clientMaxStreams,
  );
  cleanups.push(() => {
    void upstream.destroy();
    for (const s of sessions) s.destroy();
    server.close();
  });
  return { upstream, sockets, sessions, port, refused };
}

/** A peer that writes frames of its own making (a mesh certificate is all it needs); `text()` is what came back, frame headers as `[type id]`. */
async function rawPeer(port: number): Promise<{ send(...frames: Buffer[]): void; text(): string }> {
  const socket = tlsConnect({ host: '127.0.0.1', port, key: clientLeaf.keyPem, cert: clientLeaf.certPem, ca: ca.certPem, checkServerIdentity: () => undefined, ALPNProtocols: [ALPN] });
  cleanups.push(() => socket.destroy());
  await once(socket, 'secureConnect');
  let text = '';
  readMuxFrames(socket, (type, _flags, id, payload) => (text += `[${type} ${id}]${payload}`));
  return { send: (...frames) => socket.write(Buffer.concat(frames)), text: () => text };
}

function muxConnector(port: number): ReturnType<typeof socketConnector> {
  return socketConnector(() => tlsConnect({ host: '127.0.0.1', port, key: clientLeaf.keyPem, cert: clientLeaf.certPem, ca: ca.certPem, checkServerIdentity: () => undefined, ALPNProtocols: [ALPN] }), 'secureConnect');
}

/** PING frames (header only plus 8 bytes, type 8) among what the client wrote on a server-side socket. */
function countPings(socket: TLSSocket): () => number {
  let pings = 0;
  socket.on('data', (chunk: Buffer) => {
    for (let off = 0; off + 10 <= chunk.length; off += 10 + chunk.readUInt32BE(off)) if (chunk[off + 4] === 8) pings++;
  });
  return () => pings;
}

function dispatch(upstream: MuxUpstream, opts: object, r: { handler: object }): void {
  upstream.dispatch({ method: 'GET', path: '/', headers: [], ...opts } as never, r.handler as never);
}

/** Sends `n` concurrent calls to /n/0 … /n/(n-1); each must get its own answer, `for /n/<i>`. */
async function expectEachAnswered(f: Fixture, n: number): Promise<void> {
  const calls = Array.from({ length: n }, (_, i) => {
    const r = recorder();
    dispatch(f.upstream, { path: `/n/${i}` }, r);
    return r;
  });
  await Promise.all(calls.map((c) => c.settled));
  calls.forEach((c, i) => expect(Buffer.concat(c.body).toString()).toBe(`for /n/${i}`));
}

async function readAll(req: MuxRequest): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

describe('mux transport', () => {
  it('carries a request and its answer: method, target, headers in order, status, reason, body', async () => {
    const f = await fixture((req, res) => {
      res.writeHead(201, 'Made', ['content-type', 'text/plain', 'x-seen', `${req.method} ${req.url} ${req.rawHeaders.join(',')}`, 'set-cookie', 'a=1', 'set-cookie', 'b=2']);
      res.end('done');
    });
    const r = recorder();
    dispatch(f.upstream, { method: 'DELETE', path: '/items/7?x=1', headers: ['host', 'catalog', 'x-one', 'v:1'] }, r);
    await r.settled;
    expect(r.error).toBeNull();
    expect(r.connected).toBe(true);
    expect([r.status, r.statusText]).toEqual([201, 'Made']);
    expect(r.headers).toEqual(['content-type', 'text/plain', 'x-seen', 'DELETE /items/7?x=1 host,catalog,x-one,v:1', 'set-cookie', 'a=1', 'set-cookie', 'b=2']);
    expect(Buffer.concat(r.body).toString()).toBe('done');
    expect(r.trailers).toEqual({});
  });

  it('marks an answer the serving sidecar made itself in the response frame, never one with only the header', async () => {
    const f = await fixture((req, res) => {
      req.resume();
      if (req.url === '/own') res.sidecarMade = true;
      res.writeHead(503, ['x-skein-reason', 'upstream-connect-failure', 'content-length', '0']);
      res.end();
    });
    const answer = (path: string) =>
      new Promise<boolean | undefined>((resolve, reject) => {
        let control: CallControl | undefined;
        const handler: ControlledHandler = {
          onStart: (c) => (control = c),
          onResponseHead: (_status, raw) => {
            expect(raw).toEqual(['x-skein-reason', 'upstream-connect-failure', 'content-length', '0']);
            resolve(control?.sidecarMade);
            return true;
          },
          onData: () => true,
          onComplete: () => {},
          onError: reject,
        };
        f.upstream.dispatch({ method: 'GET', path, headers: [] } as never, handler as never);
      });
    expect(await answer('/own')).toBe(true);
    expect(await answer('/app')).toBe(false);
  });

  it('multiplexes concurrent requests on one connection and answers each its own, out of order', async () => {
    const held: MuxResponse[] = [];
    const f = await fixture((req, res) => {
      held.push(res);
      (res as unknown as { path: string }).path = req.url;
      // Answer in reverse once all 20 are in: each answer must still reach its own caller.
      if (held.length === 20) for (const h of held.reverse()) h.end(`for ${(h as unknown as { path: string }).path}`);
    });
    await expectEachAnswered(f, 20);
    expect(f.sockets).toHaveLength(1);
  });

  it('streams a request body without content-length as chunked, within the flow-control window', async () => {
    let seenHeaders: string[] = [];
    const f = await fixture((req, res) => {
      seenHeaders = req.rawHeaders;
      void readAll(req).then((body) => res.end(`got ${body.length} bytes, all ones: ${body.every((b) => b === 1)}`));
    });
    let sent = 0;
    const total = 4 * 1024 * 1024;
    const body = new Readable({
      read() {
        if (sent >= total) this.push(null);
        else {
          sent += 64 * 1024;
          this.push(Buffer.alloc(64 * 1024, 1));
        }
      },
    });
    const r = recorder();
    dispatch(f.upstream, { method: 'POST', body }, r);
    await r.settled;
    expect(r.error).toBeNull();
    expect(seenHeaders).toEqual(['transfer-encoding', 'chunked']);
    expect(Buffer.concat(r.body).toString()).toBe(`got ${total} bytes, all ones: true`);
  });

  it('holds a request body the server does not read to about one window', async () => {
    let req: MuxRequest | undefined;
    const f = await fixture((q) => {
      req = q;
      q.pause();
    });
    let produced = 0;
    const body = new Readable({
      read() {
        produced += 16 * 1024;
        this.push(Buffer.alloc(16 * 1024));
      },
    });
    const r = recorder();
    dispatch(f.upstream, { method: 'PUT', body }, r);
    const deadline = Date.now() + 5000;
    while (req === undefined && Date.now() < deadline) await new Promise((x) => setTimeout(x, 10));
    await new Promise((x) => setTimeout(x, 300));
    // One window unacknowledged, plus what the body stream buffers by itself.
    expect(produced).toBeLessThan(WINDOW + 4 * 16 * 1024 + body.readableHighWaterMark);
    r.abort!();
    await r.settled;
  });

  it('pauses the server response when the handler stops reading, then delivers it all on resume', async () => {
    let writes = 0;
    let blocked = false;
    const total = 2 * 1024 * 1024;
    const f = await fixture((_req, res) => {
      res.writeHead(200, ['content-length', String(total)]);
      const chunk = Buffer.alloc(32 * 1024, 7);
      const pump = (): void => {
        while (writes * chunk.length < total) {
          writes++;
          if (!res.write(chunk)) {
            blocked = true;
            res.once('drain', pump);
            return;
          }
        }
        res.end();
      };
      pump();
    });
    const r = recorder(true);
    dispatch(f.upstream, {}, r);
    const deadline = Date.now() + 5000;
    // The server blocks as soon as it has written a window, which can be before the client
    // has read the response head (and so been handed `resume`) on a busy machine.
    while ((!blocked || r.resume === null) && Date.now() < deadline) await new Promise((x) => setTimeout(x, 10));
    expect(blocked).toBe(true);
    expect(writes * 32 * 1024).toBeLessThanOrEqual(WINDOW + 32 * 1024);
    // Resume for good: the handler keeps reading from now on.
    r.pauses = 0;
    r.resume!();
    await r.settled;
    expect(r.error).toBeNull();
    expect(Buffer.concat(r.body).length).toBe(total);
  });

  it('keeps trailers behind the DATA a paused handler has not taken yet', async () => {
    const f = await fixture((_req, res) => {
      res.writeHead(200, ['content-type', 'text/plain']);
      res.write('one');
      res.write('two');
      res.addTrailers({ 'x-sum': '6' });
      res.end();
    });
    const r = recorder(true);
    dispatch(f.upstream, {}, r);
    while (r.body.length === 0) await new Promise((x) => setTimeout(x, 5));
    await new Promise((x) => setTimeout(x, 50));
    expect(r.trailers).toBeNull();
    r.pauses = 0;
    r.resume!();
    await r.settled;
    expect(Buffer.concat(r.body).toString()).toBe('onetwo');
    expect(r.trailers).toEqual({ 'x-sum': '6' });
  });

  it('never sends a call its handler abandoned while the connection was opening', async () => {
    const seen: string[] = [];
    const f = await fixture((req, res) => {
      seen.push(req.url);
      res.end('ok');
    });
    const abandoned = recorder();
    (abandoned.handler as { onConnect: (abort: (err?: Error) => void) => void }).onConnect = (abort) => abort(new Error('given up'));
    dispatch(f.upstream, { method: 'DELETE', path: '/abandoned' }, abandoned);
    const kept = recorder();
    dispatch(f.upstream, { method: 'DELETE', path: '/kept' }, kept);
    await Promise.all([abandoned.settled, kept.settled]);
    expect(abandoned.error?.message).toBe('given up');
    expect(Buffer.concat(kept.body).toString()).toBe('ok');
    expect(seen).toEqual(['/kept']);
  });

  it('sends trailers after the body', async () => {
    const f = await fixture((_req, res) => {
      res.writeHead(200, ['content-type', 'application/grpc']);
      res.write('abc');
      res.addTrailers({ 'grpc-status': '0', 'grpc-message': 'ok' });
      res.end();
    });
    const r = recorder();
    dispatch(f.upstream, {}, r);
    await r.settled;
    expect(Buffer.concat(r.body).toString()).toBe('abc');
    expect(r.trailers).toEqual({ 'grpc-status': '0', 'grpc-message': 'ok' });
  });

  it('an aborted call tells the server, whose response sees its client gone', async () => {
    let closedBeforeEnd: Promise<boolean> | undefined;
    const f = await fixture((_req, res) => {
      res.writeHead(200, []);
      closedBeforeEnd = once(res, 'close').then(() => !res.writableEnded);
    });
    const r = recorder();
    dispatch(f.upstream, {}, r);
    while (r.status === 0) await new Promise((x) => setTimeout(x, 5));
    r.abort!(new Error('caller left'));
    await r.settled;
    expect(r.error?.message).toBe('caller left');
    expect(await closedBeforeEnd).toBe(true);
  });

  it('a response cut mid-body fails the call; the connection serves the next one', async () => {
    let n = 0;
    const f = await fixture((_req, res) => {
      n++;
      res.writeHead(200, ['content-length', '100']);
      if (n === 1) {
        res.write('partial');
        res.destroy(new Error('app died'));
      } else res.end('x'.repeat(100));
    });
    const first = recorder();
    dispatch(f.upstream, {}, first);
    await first.settled;
    expect(first.error?.message).toMatch(/reset the stream: app died/);
    const second = recorder();
    dispatch(f.upstream, {}, second);
    await second.settled;
    expect(Buffer.concat(second.body).length).toBe(100);
    expect(f.sockets).toHaveLength(1);
  });

  it('after GOAWAY the open stream finishes and new calls take a new connection', async () => {
    let slow: MuxResponse | undefined;
    const f = await fixture((req, res) => {
      if (req.url === '/slow') slow = res;
      else res.end('fresh');
    });
    const first = recorder();
    dispatch(f.upstream, { path: '/slow' }, first);
    while (slow === undefined) await new Promise((x) => setTimeout(x, 5));
    f.sessions[0]!.goAway();
    // The GOAWAY reaches the client before this call: it goes out on a second connection.
    await new Promise((x) => setTimeout(x, 50));
    const second = recorder();
    dispatch(f.upstream, { path: '/next' }, second);
    await second.settled;
    expect(Buffer.concat(second.body).toString()).toBe('fresh');
    expect(f.sockets).toHaveLength(2);
    slow.end('finished');
    await first.settled;
    expect(Buffer.concat(first.body).toString()).toBe('finished');
  });

  it('a connection lost with calls in flight fails them as reset, and a refused connection as a connect error', async () => {
    const f = await fixture(() => {});
    const r = recorder();
    dispatch(f.upstream, {}, r);
    while (f.sockets.length === 0 || !r.connected) await new Promise((x) => setTimeout(x, 5));
    f.sockets[0]!.destroy();
    await r.settled;
    expect(r.error?.code).toBe('ECONNRESET');

    const dead = new MuxUpstream('https://127.0.0.1:1', socketConnector(() => tlsConnect({ host: '127.0.0.1', port: 1, ca: ca.certPem, ALPNProtocols: [ALPN] }), 'secureConnect'));
    const refused = recorder();
    dispatch(dead, {}, refused);
    await refused.settled;
    expect(refused.connected).toBe(false);
    expect(refused.error?.code).toBe('ECONNREFUSED');
    await dead.close();
  });

  it('gives up a connection whose peer stops answering (keepalive PING): its call fails as a reset naming the ping, the next call connects anew', async () => {
    // A peer that completes the TLS handshake, then reads everything and answers nothing.
    const accepted: TLSSocket[] = [];
    const server: TlsServer = createTlsServer(SERVER_TLS, (socket) => {
      accepted.push(socket);
      socket.resume();
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    const upstream = new MuxUpstream(`https://127.0.0.1:${port}`, muxConnector(port), { intervalMs: 50, timeoutMs: 100 });
    cleanups.push(() => {
      void upstream.destroy();
      for (const s of accepted) s.destroy();
      server.close();
    });
    const r = recorder();
    dispatch(upstream, {}, r);
    await r.settled;
    expect(r.connected).toBe(true);
    expect(r.error?.code).toBe('ECONNRESET');
    expect(r.error?.message).toMatch(/did not answer a ping within 100 ms/);
    const next = recorder();
    dispatch(upstream, {}, next);
    await waitUntil(() => accepted.length === 2 || undefined, { timeoutMs: 5000, what: 'a second connection' });
  });

  it('keeps calls past the stream limit waiting, and sends each on the same connection as a stream frees up', async () => {
    let open = 0;
    let mostOpen = 0;
    const f = await fixture(
      (req, res) => {
        mostOpen = Math.max(mostOpen, ++open);
        // Each answer a moment later, so the waiting calls queue up behind the open ones.
        setImmediate(() => {
          open--;
          res.end(`for ${req.url}`);
        });
      },
      { clientMaxStreams: 2 },
    );
    await expectEachAnswered(f, 6);
    expect(mostOpen).toBe(2);
    expect(f.sockets).toHaveLength(1);
  });

  it("refuses a stream past the server's limit with a RESET the client reports as refused; the open one is unharmed", async () => {
    const held: MuxResponse[] = [];
    const f = await fixture((_req, res) => held.push(res), { serverMaxStreams: 1 });
    const first = recorder();
    dispatch(f.upstream, { path: '/first' }, first);
    await waitUntil(() => held.length === 1 || undefined, { timeoutMs: 5000, what: 'the first request at the server' });
    const second = recorder();
    dispatch(f.upstream, { path: '/second' }, second);
    await second.settled;
    expect(second.error?.code).toBe('ERR_SKEIN_MUX_REFUSED');
    expect(second.error?.message).toMatch(/refused: 1 streams already open/);
    held[0]!.end('first done');
    await first.settled;
    expect(first.error).toBeNull();
    expect(Buffer.concat(first.body).toString()).toBe('first done');
    expect(held).toHaveLength(1);
  });

  it("holds a peer's request head to the HTTP/1.1 server's rules: a bad one is refused on its stream, the path normalised", async () => {
    const seen: string[] = [];
    const f = await fixture((req, res) => {
      seen.push(`${req.method} ${req.url} ${req.rawHeaders.join(',')}`);
      res.end('ok');
    });
    const peer = await rawPeer(f.port);
    const heads = [
      'G(T /x\r\n',
      'GET /x HTTP/1.0\nX-Injected: a\r\n',
      'GET /x\r\nx-a: 1\nx-forwarded-client-cert: forged\r\n',
      'GET /x\r\nbad name: 1\r\n',
      'GET /x\r\nx-a: a\x01b\r\n',
      'GET /x\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n',
      'GET /x\r\ncontent-length: 1, 2\r\n',
      'GET /x\r\ntransfer-encoding: gzip, chunked\r\n',
      'GET x\r\n',
      'GET /a/..;/b\r\n',
      'CONNECT /x\r\n',
    ];
    peer.send(...heads.map((head, i) => muxFrame(FrameType.Request, END_STREAM, 2 * i + 1, head)));
    await waitUntil(() => f.refused.length === heads.length, { timeoutMs: 5000 });
    expect(f.refused.map((e) => e.code)).toEqual([
      'HPE_INVALID_METHOD', 'HPE_INVALID_URL', 'HPE_INVALID_HEADER_TOKEN', 'HPE_INVALID_HEADER_TOKEN', 'HPE_INVALID_HEADER_TOKEN',
      'HPE_UNEXPECTED_CONTENT_LENGTH', 'HPE_UNEXPECTED_CONTENT_LENGTH', 'ERR_SKEIN_UNSUPPORTED_TRANSFER_CODING', 'HPE_INVALID_URL', 'HPE_INVALID_URL', 'HPE_INVALID_METHOD',
    ]);
    peer.send(muxFrame(FrameType.Request, END_STREAM, 101, 'GET /public/../secret/%2e%2e/x//y\r\nhost: a\r\nhost: a\r\ncontent-length: 0, 0\r\n'));
    await waitUntil(() => seen.length === 1, { timeoutMs: 5000 });
    expect(seen).toEqual(['GET /x/y host,a,host,a,content-length,0']);
    await waitUntil(() => peer.text().includes('[2 101]'), { timeoutMs: 5000 });
    expect(peer.text()).toContain('[2 1]400 Bad Request\r\nx-code: HPE_INVALID_METHOD\r\n');
  });

  it("holds a peer's request head to the listener's --max-request-headers, counted as an HTTP/1.1 head: one byte past it is refused on its stream, naming the limit", async () => {
    const seen: string[] = [];
    const f = await fixture((req, res) => {
      seen.push(req.url);
      res.end('ok');
    }, { serverMaxHeaderBytes: 1024 });
    const peer = await rawPeer(f.port);
    // Up to the head's blank line, the last line's CRLF not included, as Http1Server counts: `GET /n\r\nx: ` is 11 bytes.
    const head = (path: string, bytes: number) => `GET ${path}\r\nx: ${'a'.repeat(bytes - 11)}\r\n`;
    peer.send(muxFrame(FrameType.Request, END_STREAM, 1, head('/1', 1025)), muxFrame(FrameType.Request, END_STREAM, 3, head('/3', 1024)));
    await waitUntil(() => seen.length === 1 && f.refused.length === 1, { timeoutMs: 5000 });
    expect(seen).toEqual(['/3']);
    expect(f.refused.map((e) => [e.code, e.message])).toEqual([['HPE_HEADER_OVERFLOW', 'request headers exceed the limit of 1024 bytes (--max-request-headers)']]);
  });

  it('fails a request body whose DATA comes to more or less than its content-length, handing on none of the excess', async () => {
    const bodies: string[] = [];
    const f = await fixture((req, res) => {
      readAll(req).then(
        (body) => bodies.push(`${req.url} ok ${body.toString()}`),
        (err: Error & { status?: number }) => bodies.push(`${req.url} ${err.status} ${err.message}`),
      ).finally(() => res.end());
    });
    const peer = await rawPeer(f.port);
    const smuggled = 'GET /admin HTTP/1.1\r\nhost: a\r\nx-forwarded-client-cert: forged\r\n\r\n';
    peer.send(
      muxFrame(FrameType.Request, 0, 1, 'POST /over\r\ncontent-length: 5\r\n'),
      muxFrame(FrameType.Data, END_STREAM, 1, `hello${smuggled}`),
      muxFrame(FrameType.Request, 0, 3, 'POST /over-later\r\ncontent-length: 5\r\n'),
      muxFrame(FrameType.Data, 0, 3, 'hello'),
      muxFrame(FrameType.Data, END_STREAM, 3, smuggled),
      muxFrame(FrameType.Request, 0, 5, 'POST /short\r\ncontent-length: 5\r\n'),
      muxFrame(FrameType.Data, END_STREAM, 5, 'hel'),
      muxFrame(FrameType.Request, END_STREAM, 7, 'POST /none\r\ncontent-length: 5\r\n'),
      muxFrame(FrameType.Request, 0, 9, 'POST /exact\r\ncontent-length: 5\r\n'),
      muxFrame(FrameType.Data, 0, 9, 'hel'),
      muxFrame(FrameType.Data, END_STREAM, 9, 'lo'),
    );
    await waitUntil(() => bodies.length === 5, { timeoutMs: 5000 });
    expect(bodies.sort()).toEqual([
      '/exact ok hello',
      '/none 400 malformed request body: the stream ended 5 bytes short of its content-length',
      '/over 400 malformed request body: more DATA than its content-length',
      '/over-later 400 malformed request body: more DATA than its content-length',
      '/short 400 malformed request body: the stream ended 2 bytes short of its content-length',
    ]);
  });

  it("holds a peer's answer to the rules an app's is: a malformed head or trailers, or DATA past or short of its content-length, fails the call as a reset", async () => {
    const answers: Record<string, string[]> = {
      '/bare-lf': ['200 OK\r\nx-a: 1\nset-cookie: forged\r\ncontent-length: 2\r\n', 'ok'],
      '/status': ['999 Odd\r\ncontent-length: 2\r\n', 'ok'],
      '/reason': ['200 OK\nset-cookie: forged\r\n', 'ok'],
      '/lengths': ['200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n', 'ok'],
      '/over': ['200 OK\r\ncontent-length: 2\r\n', 'okHTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nforged'],
      '/short': ['200 OK\r\ncontent-length: 5\r\n', 'ok'],
      '/trailers': ['200 OK\r\n', 'ok', 'x-t: a\rb\r\n'],
      '/exact': ['200 OK\r\ncontent-length: 2\r\n', 'ok'],
      '/head': ['200 OK\r\ncontent-length: 2\r\n'],
    };
    const f = await fixture((req, res) => {
      const [head, data, trailers] = answers[req.url]!;
      const w = res.session.writer;
      w.text(FrameType.Response, data === undefined ? END_STREAM : 0, res.id, head!);
      if (data !== undefined) w.data(trailers === undefined ? END_STREAM : 0, res.id, Buffer.from(data, 'latin1'));
      if (trailers !== undefined) w.text(FrameType.Trailers, END_STREAM, res.id, trailers);
    });
    const results = await Promise.all(
      Object.keys(answers).map(async (path) => {
        const r = recorder();
        dispatch(f.upstream, { path, method: path === '/head' ? 'HEAD' : 'GET' }, r);
        await r.settled;
        return `${path} ${r.error === null ? `${r.status} ${Buffer.concat(r.body).toString('latin1')}` : `${r.error.code} ${r.error.message.replace(f.upstream.origin, 'ORIGIN')}`}`;
      }),
    );
    expect(results).toEqual([
      '/bare-lf ERR_SKEIN_H1_MALFORMED malformed response from ORIGIN: invalid character in header x-a (HPE_INVALID_HEADER_TOKEN)',
      '/status ERR_SKEIN_H1_MALFORMED malformed response from ORIGIN: status 999 is outside 100..599 (HPE_INVALID_STATUS)',
      '/reason ERR_SKEIN_H1_MALFORMED malformed response from ORIGIN: control characters in the reason phrase (HPE_INVALID_CONSTANT)',
      '/lengths ERR_SKEIN_H1_MALFORMED malformed response from ORIGIN: conflicting content-length headers (HPE_UNEXPECTED_CONTENT_LENGTH)',
      '/over ERR_SKEIN_MUX_RESET the peer sent more DATA than its content-length',
      '/short ERR_SKEIN_MUX_RESET the peer ended the stream 3 bytes short of its content-length',
      '/trailers ERR_SKEIN_H1_MALFORMED malformed trailers from ORIGIN: invalid character in header x-t (HPE_INVALID_HEADER_TOKEN)',
      '/exact 200 ok',
      '/head 200 ',
    ]);
    // Each failed call reset its stream; the connection serves on.
    expect(f.sockets).toHaveLength(1);
  });

  it('keeps an idle connection to a live peer: the server answers each PING, and a later call reuses the connection', async () => {
    const f = await fixture((_req, res) => res.end('ok'), { keepalive: { intervalMs: 20, timeoutMs: 200 } });
    const first = recorder();
    dispatch(f.upstream, {}, first);
    await first.settled;
    const pings = countPings(f.sockets[0]!);
    await waitUntil(() => pings() >= 3 || undefined, { timeoutMs: 5000, what: 'three pings' });
    const second = recorder();
    dispatch(f.upstream, {}, second);
    await second.settled;
    expect(second.error).toBeNull();
    expect(Buffer.concat(second.body).toString()).toBe('ok');
    expect(f.sockets).toHaveLength(1);
  });
});

describe('a peer that refuses the client\'s certificate', () => {
  /** A mux server that does `onConnection` with each connection; an upstream to it, with `tls` for its client side. */
  async function refusingPeer(onConnection: (socket: TLSSocket) => void, tls: object = { key: clientLeaf.keyPem, cert: clientLeaf.certPem }): Promise<MuxUpstream> {
    const server: TlsServer = createTlsServer(SERVER_TLS, onConnection);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    const connector = socketConnector(() => tlsConnect({ host: '127.0.0.1', port, ...tls, ca: ca.certPem, checkServerIdentity: () => undefined, ALPNProtocols: [ALPN] }), 'secureConnect');
    const upstream = new MuxUpstream(`https://127.0.0.1:${port}`, connector);
    cleanups.push(() => {
      void upstream.destroy();
      server.close();
    });
    return upstream;
  }

  /** A POST on `upstream` that fails: its error, and whether its control says the peer refused it unprocessed. */
  function failedPost(upstream: MuxUpstream): Promise<{ err: Error & { code?: string }; refused: boolean | undefined }> {
    return new Promise((resolve, reject) => {
      let control: CallControl | undefined;
      const handler: ControlledHandler = {
        onStart: (c) => (control = c),
        onResponseHead: () => true,
        onData: () => true,
        onComplete: () => reject(new Error('answered')),
        onError: (err) => resolve({ err, refused: control?.refused }),
      };
      upstream.dispatch({ method: 'POST', path: '/', headers: [], body: 'a=b' } as never, handler as never);
    });
  }

  it('by GOAWAY with REFUSED as its first frame: the calls sent meanwhile fail as never sent, naming why', async () => {
    const upstream = await refusingPeer((socket) => socket.end(refusalFrame('untrusted-certificate (client certificate refused: UNABLE_TO_GET_ISSUER_CERT)')));
    const { err, refused } = await failedPost(upstream);
    expect(err.code).toBe(TLS_HANDSHAKE_FAILED);
    expect(err.message).toBe("the peer refused this sidecar's certificate: untrusted-certificate (client certificate refused: UNABLE_TO_GET_ISSUER_CERT)");
    expect(refused).toBe(true);
  });

  it('by its TLS alert before any frame (TLS 1.3): the same', async () => {
    // The server requires a certificate and the client has none: node's server alerts certificate_required.
    const upstream = await refusingPeer((socket) => socket.resume(), {});
    const { err, refused } = await failedPost(upstream);
    expect(err.code).toBe(TLS_HANDSHAKE_FAILED);
    expect(err.message).toBe("the peer refused this sidecar's certificate: certificate required (ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED)");
    expect(refused).toBe(true);
  });

  it('a GOAWAY with REFUSED after another frame is a plain GOAWAY: the calls fail with the close, as resets', async () => {
    const upstream = await refusingPeer((socket) => {
      socket.write(muxFrame(FrameType.Ping, 0, 0, 'skeinmux'));
      socket.end(refusalFrame('untrusted-certificate (too late)'));
    });
    const { err, refused } = await failedPost(upstream);
    expect(err.code).toBe('ECONNRESET');
    expect(refused).toBe(false);
  });
});
