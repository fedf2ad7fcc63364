/** The HTTP/2 upstream against a real node:http2 server on 127.0.0.1. */
import { createSecureServer, createServer, constants, performServerHandshake, type Http2SecureServer, type Http2Server, type Http2Session, type OutgoingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import { createServer as createHttp1Server } from 'node:http';
import { connect as netConnect, createServer as createNetServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { Duplex, PassThrough, Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { makeCa, makeLeaf } from '../../test/support/certs.js';
import { recordingHandler, type Recorded } from '../../test/support/recording-handler.js';
import { waitUntil } from '../../test/support/wait.js';
import type { Keepalive } from './keepalive.js';
import { refusalGoAwayData } from '../h2-refusal.js';
import { sessionToken, SIDECAR_MADE_HEADER } from '../h2-sidecar-made.js';
import { TLS_HANDSHAKE_FAILED, TLS_HANDSHAKE_TIMEOUT } from './connect-phase.js';
import { H2_PING_TIMEOUT, H2_REFUSED, H2Upstream, socketConnector, type SessionConnector } from './h2-upstream.js';
import type { CallControl } from './upstream-dispatcher.js';

/** Records what the upstream tells its handler; `pauseFirst` returns false from the first onData. */
const recorder = (pauseFirst = false): Recorded => recordingHandler(pauseFirst ? 1 : 0);

const servers: Http2Server[] = [];
const upstreams: H2Upstream[] = [];

afterEach(async () => {
  await Promise.all(upstreams.splice(0).map((u) => u.destroy()));
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

async function server(onStream: (stream: ServerHttp2Stream, headers: Record<string, unknown>) => void): Promise<{ port: number; sessions: Http2Session[] }> {
  const s = createServer();
  const sessions: Http2Session[] = [];
  s.on('session', (session) => sessions.push(session));
  s.on('stream', (stream, headers) => {
    // Streams the tests reset on purpose report it on the server side too.
    stream.on('error', () => {});
    onStream(stream, headers as Record<string, unknown>);
  });
  servers.push(s);
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  return { port: (s.address() as AddressInfo).port, sessions };
}

function upstream(port: number, connector?: SessionConnector, keepalive?: Keepalive): H2Upstream {
  const u = new H2Upstream(`http://127.0.0.1:${port}`, connector ?? socketConnector(() => netConnect({ host: '127.0.0.1', port }), 'connect'), keepalive);
  upstreams.push(u);
  return u;
}

function call(u: H2Upstream, body: Buffer | Readable | null = null, pauseFirst = false, path = '/echo.Echo/Say'): Recorded {
  const r = recorder(pauseFirst);
  u.dispatch({ method: 'POST', path, headers: ['host', 'catalog', 'te', 'trailers', 'X-Mixed-Case', 'v', 'grpc-meta-bin', 'AAEC'], body }, r.handler as never);
  return r;
}

/** Echoes the request body, then grpc-status trailers. */
function echo(stream: ServerHttp2Stream, headers: Record<string, unknown>): void {
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  stream.on('end', () => {
    stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'x-saw-authority': String(headers[':authority']), 'x-saw-mixed': String(headers['x-mixed-case']) }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'grpc-message': 'ok' }));
    stream.end(Buffer.concat(chunks));
  });
}

/** An HTTP/2 frame: type, flags, stream id, payload. */
function frame(type: number, flags: number, id: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(id, 5);
  return Buffer.concat([head, payload]);
}

/** An HPACK literal header field without indexing, new name, no Huffman (names and values under 127 bytes). */
function literal(name: string, value: string): Buffer {
  return Buffer.concat([Buffer.from([0, name.length]), Buffer.from(name), Buffer.from([value.length]), Buffer.from(value)]);
}

const rawServers: Server[] = [];
const rawSockets: Socket[] = [];
afterEach(async () => {
  for (const socket of rawSockets.splice(0)) socket.destroy();
  await Promise.all(rawServers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

/**
 * A minimal HTTP/2 server on raw frames: SETTINGS (and ACKs), then for each request HEADERS
 * frame what `answer(streamId)` returns, in one socket write.
 */
async function rawH2Server(answer: (id: number) => Buffer): Promise<number> {
  const s = createNetServer((socket) => {
    rawSockets.push(socket);
    socket.on('error', () => {});
    socket.write(frame(4, 0, 0, Buffer.alloc(0)));
    let buffered = Buffer.alloc(0);
    let prefaceRead = false;
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (!prefaceRead) {
        if (buffered.length < 24) return;
        buffered = buffered.subarray(24);
        prefaceRead = true;
      }
      while (buffered.length >= 9) {
        const length = buffered.readUIntBE(0, 3);
        if (buffered.length < 9 + length) return;
        const [type, flags, id] = [buffered[3]!, buffered[4]!, buffered.readUInt32BE(5) & 0x7fffffff];
        buffered = buffered.subarray(9 + length);
        if (type === 4 && (flags & 1) === 0) socket.write(frame(4, 1, 0, Buffer.alloc(0)));
        else if (type === 1) socket.write(answer(id));
      }
    });
  });
  rawServers.push(s);
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  return (s.address() as AddressInfo).port;
}

/**
 * A connector whose socket is a JS stream over a TCP connection: node:http2 wraps it and
 * parses each chunk it emits within that 'data' call, with no tick between the frames.
 */
function jsTransport(port: number): SessionConnector {
  return (callback) => {
    const socket = netConnect({ host: '127.0.0.1', port });
    socket.once('error', (err) => callback(err, null));
    socket.once('connect', () => {
      const duplex = new Duplex({
        read: () => void socket.resume(),
        write: (chunk: Buffer, _encoding, done) => void socket.write(chunk, done),
        final: (done) => {
          socket.end();
          done();
        },
        destroy: (err, done) => {
          socket.destroy();
          done(err);
        },
      });
      socket.on('data', (chunk: Buffer) => {
        if (!duplex.push(chunk)) socket.pause();
      });
      socket.on('end', () => duplex.push(null));
      callback(null, duplex as unknown as Socket);
    });
  };
}

/** Dispatches a POST of `body` and resolves with its error and control once it fails. */
function failedCall(u: H2Upstream, body: Buffer | Readable): Promise<{ err: Error & { code?: string }; control: CallControl }> {
  return new Promise((resolve, reject) => {
    let control: CallControl | null = null;
    const handler = { onStart: (c: CallControl) => (control = c), onResponseHead: () => true, onData: () => true, onComplete: () => reject(new Error('completed')), onError: (err: Error) => resolve({ err, control: control! }) };
    u.dispatch({ method: 'POST', path: '/echo.Echo/Say', headers: ['host', 'catalog'], body }, handler as never);
  });
}

async function text(body: Buffer | Readable | null | undefined): Promise<string> {
  if (body === null || body === undefined) return '(none)';
  if (Buffer.isBuffer(body)) return body.toString();
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString();
}

describe('H2Upstream', () => {
  it('sends headers and body, and completes with the trailers after the body', async () => {
    const { port } = await server(echo);
    const r = call(upstream(port), Buffer.from('hello'));
    await r.settled;
    expect(r.error).toBeNull();
    expect(r.connected).toBe(true);
    expect(r.status).toBe(200);
    expect(r.headers).toEqual(expect.arrayContaining(['x-saw-authority', 'catalog', 'x-saw-mixed', 'v']));
    expect(Buffer.concat(r.body).toString()).toBe('hello');
    expect(r.trailers).toMatchObject({ 'grpc-status': '0', 'grpc-message': 'ok' });
  });

  it('multiplexes concurrent calls on one session', async () => {
    const srv = await server(echo);
    const u = upstream(srv.port);
    const calls = Array.from({ length: 20 }, (_, i) => call(u, Buffer.from(`m${i}`)));
    await Promise.all(calls.map((c) => c.settled));
    expect(calls.map((c) => Buffer.concat(c.body).toString())).toEqual(calls.map((_, i) => `m${i}`));
    expect(srv.sessions).toHaveLength(1);
  });

  it('delivers every DATA frame before completing when the handler pauses the response', async () => {
    const { port } = await server((stream) => {
      stream.respond({ ':status': 200 }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      for (let i = 0; i < 50; i++) stream.write(Buffer.alloc(1024, i));
      stream.end();
    });
    const r = call(upstream(port), null, true);
    // Paused after the first chunk: nothing more arrives and nothing completes until it is resumed.
    await waitUntil(() => r.body.length > 0, { what: 'the first chunk' });
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(r.body).toHaveLength(1);
    expect(r.trailers).toBeNull();
    r.resume!();
    await r.settled;
    expect(Buffer.concat(r.body).length).toBe(50 * 1024);
    expect(r.trailers).toMatchObject({ 'grpc-status': '0' });
  });

  it('tells the handler the response head before the body when HEADERS and DATA come in one read', async () => {
    // A raw HTTP/2 peer writes each answer's HEADERS, DATA and trailers in one socket write,
    // and the transport hands them to the session from JS, as a TLS socket can: node:http2
    // then parses them within one JS call, pushing the DATA at once while 'response' waits
    // for the next tick. A 'data' listener added with the request used to get the body first
    // (the sidecar then cut its gRPC caller's stream: RST_STREAM code 0).
    const port = await rawH2Server((id) =>
      Buffer.concat([
        frame(1, 0x4, id, Buffer.concat([Buffer.from([0x88]), literal('content-type', 'application/grpc')])),
        frame(0, 0, id, Buffer.from([0, 0, 0, 0, 2, 0x6f, 0x6b])),
        frame(1, 0x5, id, literal('grpc-status', '0')),
      ]),
    );
    const u = upstream(port, jsTransport(port));
    for (let i = 0; i < 5; i++) {
      const events: string[] = [];
      const r = call(u);
      const h = r.handler as { onHeaders: (...a: unknown[]) => boolean; onData: (chunk: Buffer) => boolean };
      const [onHeaders, onData] = [h.onHeaders, h.onData];
      h.onHeaders = (...a) => (events.push('headers'), onHeaders(...a));
      h.onData = (chunk) => (events.push('data'), onData(chunk));
      await r.settled;
      expect(r.error).toBeNull();
      expect(events).toEqual(['headers', 'data']);
      expect(r.status).toBe(200);
      expect(Buffer.concat(r.body)).toEqual(Buffer.from([0, 0, 0, 0, 2, 0x6f, 0x6b]));
      expect(r.trailers).toMatchObject({ 'grpc-status': '0' });
    }
  });

  it('streams a request body with backpressure', async () => {
    const { port } = await server(echo);
    const big = Buffer.alloc(3 * 1024 * 1024, 7);
    const parts = Array.from({ length: 48 }, (_, i) => big.subarray(i * 65536, (i + 1) * 65536));
    const r = call(upstream(port), Readable.from(parts));
    await r.settled;
    expect(r.error).toBeNull();
    expect(Buffer.concat(r.body).equals(big)).toBe(true);
  });

  it('fails a call to a closed port as a connect error, without onConnect', async () => {
    const { port } = await server(echo);
    await new Promise((resolve) => servers.pop()!.close(resolve));
    const r = call(upstream(port), Buffer.from('x'));
    await r.settled;
    expect(r.connected).toBe(false);
    expect(r.error?.code).toBe('ECONNREFUSED');
  });

  it('opens a new session after GOAWAY while the open stream finishes', async () => {
    let held: ServerHttp2Stream | null = null;
    const srv = await server((stream, headers) => {
      if (held === null) {
        held = stream;
        return;
      }
      echo(stream, headers);
    });
    const u = upstream(srv.port);
    const first = call(u, Buffer.from('first'));
    await expect.poll(() => held, { timeout: 5000 }).not.toBeNull();
    srv.sessions[0]!.goaway(constants.NGHTTP2_NO_ERROR, 1);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const second = call(u, Buffer.from('second'));
    await second.settled;
    expect(Buffer.concat(second.body).toString()).toBe('second');
    expect(srv.sessions).toHaveLength(2);
    held!.respond({ ':status': 200 });
    held!.end('done');
    await first.settled;
    expect(first.error).toBeNull();
    expect(Buffer.concat(first.body).toString()).toBe('done');
  });

  it('sends a refused stream again on a new session', async () => {
    let refused = 0;
    const srv = await server((stream, headers) => {
      if (refused++ === 0) {
        stream.close(constants.NGHTTP2_REFUSED_STREAM);
        return;
      }
      echo(stream, headers);
    });
    const r = call(upstream(srv.port), Buffer.from('again'));
    await r.settled;
    expect(r.error).toBeNull();
    expect(Buffer.concat(r.body).toString()).toBe('again');
    expect(refused).toBe(2);
  });

  it('sends a stream past the last one a GOAWAY with an error code took again on a new session; the streams it took fail', async () => {
    // RFC 9113 §6.8: streams above the GOAWAY's last stream id were not processed, whatever its
    // code. node destroys a session at an error-code GOAWAY, every stream with the session's
    // error, and such a call failed as a reset: a gRPC call (a POST) that never reached the app
    // was not retried (`14 UNAVAILABLE`, retries-exhausted) and its endpoint was blamed.
    for (const code of [constants.NGHTTP2_INTERNAL_ERROR, constants.NGHTTP2_ENHANCE_YOUR_CALM]) {
      let held: ServerHttp2Stream | null = null;
      let seen = 0;
      const srv = await server((stream, headers) => {
        seen++;
        if (held === null) {
          held = stream;
          return;
        }
        if (srv.sessions.length === 1) {
          // The second stream, unprocessed: the GOAWAY names the held one as the last taken.
          stream.session!.goaway(code, held.id!);
          setTimeout(() => stream.session?.destroy(), 50);
          return;
        }
        echo(stream, headers);
      });
      const u = upstream(srv.port);
      const first = call(u, Buffer.from('first'));
      await expect.poll(() => held, { timeout: 5000 }).not.toBeNull();
      const second = call(u, Buffer.from('second'));
      await second.settled;
      expect(second.error).toBeNull();
      expect(Buffer.concat(second.body).toString()).toBe('second');
      expect(srv.sessions).toHaveLength(2);
      expect(seen).toBe(3);
      // The stream the GOAWAY took may have reached the app: a reset, not sent again.
      await first.settled;
      expect(first.error).not.toBeNull();
      expect(first.error!.code).not.toBe(H2_REFUSED);
    }
  });

  describe('a refused stream with a streamed body', () => {
    /** A server that refuses the first stream once `refuseAfter` bytes of its body came, and echoes later ones. */
    async function refusingOnce(refuseAfter: number): Promise<{ port: number; streams: () => number; sessions: Http2Session[] }> {
      let streams = 0;
      const srv = await server((stream, headers) => {
        if (streams++ > 0) {
          echo(stream, headers);
          return;
        }
        let seen = 0;
        const refuse = (): void => void (stream.closed || stream.close(constants.NGHTTP2_REFUSED_STREAM));
        stream.on('data', (c: Buffer) => {
          if ((seen += c.length) >= refuseAfter) refuse();
        });
        stream.on('end', refuse);
      });
      return { port: srv.port, streams: () => streams, sessions: srv.sessions };
    }

    it('is sent again on a new session: what had gone out, then the rest as it comes', async () => {
      const srv = await refusingOnce(5);
      const body = new PassThrough();
      body.write('first');
      const r = call(upstream(srv.port), body);
      // The second stream is open (on a second session) before the rest of the body comes.
      await expect.poll(() => srv.streams(), { timeout: 5000 }).toBe(2);
      expect(srv.sessions).toHaveLength(2);
      body.end('|second');
      await r.settled;
      expect(r.error).toBeNull();
      expect(Buffer.concat(r.body).toString()).toBe('first|second');
      expect(srv.streams()).toBe(2);
    });

    it('is sent again whole when the body had ended', async () => {
      const srv = await refusingOnce(Infinity);
      const r = call(upstream(srv.port), Readable.from([Buffer.from('all'), Buffer.from(' of it')]));
      await r.settled;
      expect(r.error).toBeNull();
      expect(Buffer.concat(r.body).toString()).toBe('all of it');
      expect(srv.streams()).toBe(2);
    });

    it('fails as never sent when more went out than is kept (64 KiB)', async () => {
      const srv = await refusingOnce(70_000);
      const body = new PassThrough();
      const r = call(upstream(srv.port), body);
      body.write(Buffer.alloc(70_000, 97));
      await r.settled;
      expect(r.error?.code).toBe(H2_REFUSED);
      expect(srv.streams()).toBe(1);
      body.destroy();
    });

    it('fails as never sent, its control saying so and handing its body back whole, when refused again', async () => {
      let streams = 0;
      const srv = await server((stream) => {
        streams++;
        stream.close(constants.NGHTTP2_REFUSED_STREAM);
      });
      const { err, control } = await failedCall(upstream(srv.port), Readable.from([Buffer.from('x')]));
      expect(err.code).toBe(H2_REFUSED);
      expect(streams).toBe(2);
      expect(control.refused).toBe(true);
      expect(await text(control.returnedBody)).toBe('x');
    });

    it('fails as never sent, handing its body back whole, when its new session cannot be opened (a draining peer that closed its listener)', async () => {
      const srv = await refusingOnce(5);
      let connects = 0;
      const plain = socketConnector(() => netConnect({ host: '127.0.0.1', port: srv.port }), 'connect');
      const closedAfterFirst: SessionConnector = (cb) => (++connects === 1 ? plain(cb) : cb(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), null));
      const body = new PassThrough();
      body.write('first');
      const { err, control } = await failedCall(upstream(srv.port, closedAfterFirst), body);
      expect(err.code).toBe('ECONNREFUSED');
      expect(connects).toBe(2);
      expect(control.refused).toBe(true);
      // What went out on the refused stream, then the rest as the caller sends it.
      body.end('|second');
      expect(await text(control.returnedBody)).toBe('first|second');
    });
  });

  it('reports a reset stream as an error, once', async () => {
    const { port } = await server((stream) => {
      stream.respond({ ':status': 200 });
      stream.write('partial');
      stream.close(constants.NGHTTP2_INTERNAL_ERROR);
    });
    const r = call(upstream(port), Buffer.from('x'));
    await r.settled;
    expect(r.error).not.toBeNull();
    expect(r.trailers).toBeNull();
  });

  it('cancels the stream on abort and reports the error once', async () => {
    let arrived = false;
    let rstCode = -1;
    const { port } = await server((stream) => {
      arrived = true;
      stream.on('close', () => (rstCode = stream.rstCode));
    });
    const r = call(upstream(port), Buffer.from('x'));
    await expect.poll(() => arrived, { timeout: 5000 }).toBe(true);
    r.abort!();
    await r.settled;
    expect(r.error).not.toBeNull();
    await expect.poll(() => rstCode, { timeout: 5000 }).toBe(constants.NGHTTP2_CANCEL);
  });

  it('cancels a call whose body is still streaming with the reset alone: the server never sees its body end', async () => {
    const events: string[] = [];
    const { port } = await server((stream) => {
      stream.on('data', () => events.includes('data') || events.push('data'));
      stream.on('end', () => events.push('end'));
      stream.on('aborted', () => events.push('aborted'));
      stream.on('close', () => events.push(`close ${stream.rstCode}`));
    });
    const body = new PassThrough();
    const r = call(upstream(port), body);
    body.write(Buffer.alloc(600));
    await expect.poll(() => events.includes('data'), { timeout: 5000 }).toBe(true);
    r.abort!();
    await r.settled;
    await expect.poll(() => events.some((e) => e.startsWith('close')), { timeout: 5000 }).toBe(true);
    // node's own close(code) would send END_STREAM ahead of the reset: 'end' before 'aborted'.
    expect(events.filter((e) => e === 'aborted' || e === 'end')[0]).toBe('aborted');
    expect(events).toContain(`close ${constants.NGHTTP2_CANCEL}`);
    body.destroy();
  });

  it('drops the unread answer of a call abandoned while paused, so the session can still close', async () => {
    const { port } = await server((stream) => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
      stream.end(Buffer.alloc(200_000, 97));
    });
    const u = upstream(port);
    const r = call(u, Buffer.from('x'), true);
    await expect.poll(() => r.body.length, { timeout: 5000 }).toBe(1);
    r.abort!();
    await r.settled;
    expect(r.error).not.toBeNull();
    // A stream left holding unread DATA never ends, and a graceful close waits for it for ever.
    const closed = await Promise.race([u.close().then(() => 'closed'), new Promise((resolve) => setTimeout(resolve, 5000, 'still open after 5 s'))]);
    expect(closed).toBe('closed');
  });

  it('serves undici request() on top of dispatch (mirroring uses it)', async () => {
    const { port } = await server(echo);
    const res = await upstream(port).request({ method: 'POST', path: '/echo.Echo/Say', headers: { host: 'catalog' }, body: Buffer.from('copy') });
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe('copy');
  });

  it('refuses calls after close', async () => {
    const { port } = await server(echo);
    const u = upstream(port);
    await call(u, Buffer.from('x')).settled;
    await u.close();
    const r = call(u, Buffer.from('y'));
    await r.settled;
    expect(r.error?.code).toBe('ERR_SKEIN_H2_SESSION_CLOSED');
  });

  it('settles queued calls when closed while a connect that then fails is under way', async () => {
    // undici's connectors report a failure with no socket at all.
    const failing: SessionConnector = (cb) => setTimeout(() => (cb as unknown as (e: Error) => void)(Object.assign(new Error('refused'), { code: 'ECONNREFUSED' })), 50);
    const u = upstream(1, failing);
    const r = call(u, Buffer.from('x'));
    const closing = u.close();
    await r.settled;
    await closing;
    expect(r.error).not.toBeNull();
    expect(r.connected).toBe(false);
  });

  it('sends a refused call again once, then reports the refusal', async () => {
    let streams = 0;
    const srv = await server((stream) => {
      streams++;
      stream.close(constants.NGHTTP2_REFUSED_STREAM);
    });
    const r = call(upstream(srv.port), Buffer.from('x'));
    await r.settled;
    expect(r.error).not.toBeNull();
    expect(streams).toBe(2);
    // The refusing session took no second call: each try had its own.
    expect(srv.sessions).toHaveLength(2);
  });

  it('never sends a call aborted while its resend waits for a new session', async () => {
    let streams = 0;
    const srv = await server((stream) => {
      streams++;
      stream.close(constants.NGHTTP2_REFUSED_STREAM);
    });
    let connects = 0;
    let release: (() => void) | null = null;
    const plain = socketConnector(() => netConnect({ host: '127.0.0.1', port: srv.port }), 'connect');
    // The second session's transport waits until the test lets it go.
    const gated: SessionConnector = (cb) => (++connects === 1 ? plain(cb) : (release = () => plain(cb)));
    const r = call(upstream(srv.port, gated), Buffer.from('x'));
    await expect.poll(() => release, { timeout: 5000 }).not.toBeNull();
    r.abort!();
    await r.settled;
    expect(r.error).not.toBeNull();
    release!();
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(streams).toBe(1);
  });

  it('fails a call to a peer that does not speak HTTP/2 as not sent', async () => {
    const h1 = createHttp1Server((_req, res) => res.end('http/1.1 only'));
    await new Promise<void>((resolve) => h1.listen(0, '127.0.0.1', resolve));
    try {
      const r = call(upstream((h1.address() as AddressInfo).port), Buffer.from('x'));
      await r.settled;
      expect(r.connected).toBe(false);
      expect(r.error?.code).toBe('ERR_SKEIN_H2_SESSION_CLOSED');
    } finally {
      h1.closeAllConnections();
      h1.close();
    }
  });

  it('keepalive: a session whose peer stops answering (PING unanswered) is destroyed, its call fails as a reset naming the ping, the next call gets a new session; a live idle one stays', async () => {
    const srv = await server(echo);
    // A relay whose connections can be frozen: bytes in either direction are dropped, as to a SIGSTOPped peer.
    const frozen = new Set<Socket>();
    const sockets: Socket[] = [];
    const relay: Server = createNetServer((inbound) => {
      const out = netConnect({ host: '127.0.0.1', port: srv.port });
      sockets.push(inbound, out);
      inbound.on('data', (d: Buffer) => void (frozen.has(inbound) || out.write(d)));
      out.on('data', (d: Buffer) => void (frozen.has(inbound) || inbound.write(d)));
      inbound.on('error', () => out.destroy());
      out.on('error', () => inbound.destroy());
      inbound.on('close', () => out.destroy());
      out.on('close', () => inbound.destroy());
    });
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
    try {
      const port = (relay.address() as AddressInfo).port;
      const u = upstream(port, undefined, { intervalMs: 50, timeoutMs: 200 });
      const first = call(u, Buffer.from('a'));
      await first.settled;
      expect(first.error).toBeNull();
      // Idle but alive for many intervals: PINGs are answered, the session stays.
      await new Promise((resolve) => setTimeout(resolve, 600));
      const second = call(u, Buffer.from('b'));
      await second.settled;
      expect(second.error).toBeNull();
      expect(srv.sessions).toHaveLength(1);

      for (const socket of sockets) frozen.add(socket);
      const started = Date.now();
      const hung = call(u, Buffer.from('c'));
      await hung.settled;
      expect(hung.error?.code).toBe(H2_PING_TIMEOUT);
      expect(hung.error?.message).toMatch(/did not answer an HTTP\/2 PING within 200 ms/);
      expect(Date.now() - started).toBeLessThan(2_000);

      const after = call(u, Buffer.from('d'));
      await after.settled;
      expect(after.error).toBeNull();
      expect(Buffer.concat(after.body).toString()).toBe('d');
      expect(srv.sessions).toHaveLength(2);
    } finally {
      for (const socket of sockets) socket.destroy();
      relay.close();
    }
  });

  it('gives up a transport whose TLS handshake stalls on an open connection, with a code of its own, still one of connecting', async () => {
    const held: Socket[] = [];
    const silent: Server = createNetServer((socket) => held.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const port = (silent.address() as AddressInfo).port;
      const connector = socketConnector(() => tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }), 'secureConnect', 200);
      const r = call(upstream(port, connector), Buffer.from('x'));
      await r.settled;
      expect(r.connected).toBe(false);
      expect(r.error?.code).toBe(TLS_HANDSHAKE_TIMEOUT);
      expect(r.error?.message).toBe('the TLS handshake did not complete within 200 ms');
    } finally {
      for (const socket of held) socket.destroy();
      silent.close();
    }
  });
});

describe('H2Upstream to a peer that refuses this sidecar\'s certificate', () => {
  /**
   * A server that takes each connection as an HTTP/2 session and hands it to `onSession`; the
   * connector records every error its sockets report (what the mTLS connectors count).
   */
  async function peer(onSession: (session: ServerHttp2Session) => void): Promise<{ upstream: H2Upstream; socketErrors: Error[] }> {
    const s: Server = createNetServer((socket) => {
      rawSockets.push(socket);
      const session = performServerHandshake(socket);
      session.on('error', () => session.destroy());
      // Streams past a GOAWAY are refused, which reports itself as an error too.
      session.on('stream', (stream) => stream.on('error', () => {}));
      onSession(session);
    });
    rawServers.push(s);
    await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
    const port = (s.address() as AddressInfo).port;
    const socketErrors: Error[] = [];
    const plain = socketConnector(() => netConnect({ host: '127.0.0.1', port }), 'connect');
    const watched: SessionConnector = (callback) =>
      plain((err, socket) => {
        socket?.on('error', (e: Error) => socketErrors.push(e));
        callback(err, socket);
      });
    return { upstream: upstream(port, watched), socketErrors };
  }

  const refuse = (session: ServerHttp2Session): void => session.goaway(constants.NGHTTP2_NO_ERROR, 0, refusalGoAwayData('untrusted-certificate'));
  const REFUSAL = "the peer refused this sidecar's certificate: untrusted-certificate";

  it('by a GOAWAY that took no stream, with the refusal: every call fails as never sent, naming it, its streamed body handed back; the socket reports it once', async () => {
    const { upstream: u, socketErrors } = await peer(refuse);
    const [buffered, streamed] = await Promise.all([failedCall(u, Buffer.from('a')), failedCall(u, Readable.from([Buffer.from('b')]))]);
    for (const { err, control } of [buffered, streamed]) {
      expect(err.code).toBe(TLS_HANDSHAKE_FAILED);
      expect(err.message).toBe(REFUSAL);
      expect(control.refused).toBe(true);
    }
    expect(await text(streamed.control.returnedBody)).toBe('b');
    expect(socketErrors).toEqual([buffered.err]);
  });

  it('the same for calls already sent when the refusal comes (its last stream 0 says none was processed)', async () => {
    // node's server cannot send it once it has read a stream (it names the last one read), so raw frames do.
    const goAway = (lastStreamId: number): Buffer => {
      const head = Buffer.alloc(8);
      head.writeUInt32BE(lastStreamId, 0);
      return frame(7, 0, 0, Buffer.concat([head, refusalGoAwayData('untrusted-certificate')]));
    };
    const port = await rawH2Server(() => goAway(0));
    const { err, control } = await failedCall(upstream(port), Readable.from([Buffer.from('b')]));
    expect(err.code).toBe(TLS_HANDSHAKE_FAILED);
    expect(err.message).toBe(REFUSAL);
    expect(control.refused).toBe(true);
    expect(await text(control.returnedBody)).toBe('b');
  });

  it('a GOAWAY with the refusal that took a stream is a plain GOAWAY: the call it took is answered', async () => {
    const { upstream: u, socketErrors } = await peer((session) =>
      session.once('stream', (stream, headers) => {
        echo(stream, headers as Record<string, unknown>);
        session.goaway(constants.NGHTTP2_NO_ERROR, stream.id!, refusalGoAwayData('untrusted-certificate'));
      }),
    );
    const r = call(u, Buffer.from('kept'));
    await r.settled;
    expect(r.error).toBeNull();
    expect(Buffer.concat(r.body).toString()).toBe('kept');
    expect(socketErrors).toEqual([]);
  });
});

describe('H2Upstream to a peer sidecar that answers a call itself', () => {
  const leaf = makeLeaf(makeCa(), 'catalog');
  const secureServers: Http2SecureServer[] = [];
  // Before the file's own: a server closes once its sessions have.
  afterEach(async () => {
    await Promise.all(upstreams.splice(0).map((u) => u.destroy()));
    await Promise.all(secureServers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
  });

  /**
   * A peer that answers each call on its first body chunk, trailers-only, UNAVAILABLE with
   * `x-skein-reason: upstream-connect-failure` (as a sidecar that could not reach its app),
   * and the mark `mark` gives its stream, if any; over TLS, or h2c. Resolves the streams'
   * closes in `closed`.
   */
  async function peer(tls: boolean, mark: (stream: ServerHttp2Stream) => string | undefined): Promise<{ upstream: H2Upstream; closed: Promise<void>[] }> {
    const closed: Promise<void>[] = [];
    const answer = (stream: ServerHttp2Stream): void => {
      closed.push(new Promise((resolve) => stream.once('close', resolve)));
      stream.once('data', () => {
        const head: OutgoingHttpHeaders = { ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '14', 'x-skein-reason': 'upstream-connect-failure' };
        const token = mark(stream);
        if (token !== undefined) head[SIDECAR_MADE_HEADER] = token;
        stream.respond(head, { endStream: true });
      });
    };
    if (!tls) {
      const { port } = await server(answer);
      return { upstream: upstream(port), closed };
    }
    const s = createSecureServer({ key: leaf.keyPem, cert: leaf.certPem });
    s.on('stream', answer);
    secureServers.push(s);
    await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
    const { port } = s.address() as AddressInfo;
    const connector = socketConnector(() => tlsConnect({ host: '127.0.0.1', port, ca: leaf.caPem, ALPNProtocols: ['h2'], checkServerIdentity: () => undefined }), 'secureConnect');
    const u = new H2Upstream(`https://127.0.0.1:${port}`, connector);
    upstreams.push(u);
    return { upstream: u, closed };
  }

  /** A POST whose streamed body has sent `a` and not ended: its control, what it said at the head, once the call completed. */
  function answered(u: H2Upstream, body: PassThrough): Promise<{ control: CallControl; markedAtHead: boolean | undefined; head: string[] }> {
    return new Promise((resolve, reject) => {
      let control: CallControl | null = null;
      let markedAtHead: boolean | undefined;
      let head: string[] = [];
      const handler = {
        onStart: (c: CallControl) => (control = c),
        onResponseHead: (_status: number, raw: string[]) => {
          markedAtHead = control!.sidecarMade;
          head = raw;
          return true;
        },
        onData: () => true,
        onComplete: () => resolve({ control: control!, markedAtHead, head }),
        onError: reject,
      };
      body.write('a');
      u.dispatch({ method: 'POST', path: '/echo.Echo/Say', headers: ['host', 'catalog'], body }, handler as never);
    });
  }

  it('with its TLS session\'s token: the control says so at the head, and the streamed body stops going to it and comes back whole', async () => {
    const { upstream: u, closed } = await peer(true, (stream) => sessionToken(stream.session));
    const body = new PassThrough();
    const { control, markedAtHead } = await answered(u, body);
    expect(markedAtHead).toBe(true);
    // The rest of the body is the retry's, not the peer's: the call's stream is closed, not left open for it.
    await closed[0];
    body.end('b');
    expect(await text(control.returnedBody)).toBe('ab');
    expect(control.refused).toBe(false);
  });

  it('with any other token, or none: not believed, and the body is not taken back', async () => {
    for (const mark of [() => 'AAAAAAAAAAAAAAAAAAAAAA', () => undefined]) {
      const { upstream: u } = await peer(true, mark);
      const body = new PassThrough();
      const { control, markedAtHead, head } = await answered(u, body);
      body.end('b');
      expect(markedAtHead).toBe(false);
      expect(control.returnedBody).toBeNull();
      expect(head).toEqual(expect.arrayContaining(['x-skein-reason', 'upstream-connect-failure']));
    }
  });

  it('never over h2c (the local app), whatever the header says', async () => {
    const { upstream: u } = await peer(false, () => 'AAAAAAAAAAAAAAAAAAAAAA');
    const body = new PassThrough();
    const { control, markedAtHead } = await answered(u, body);
    body.end('b');
    expect(markedAtHead).toBe(false);
    expect(control.returnedBody).toBeNull();
  });
});
