/**
 * The proxy listeners. Each is a front server (net, or tls for mTLS inbound) that hands every
 * connection to one of three protocol servers: Skein's own HTTP/1.1 server (sidecar/http1/),
 * node:http2 for HTTP/2 (gRPC), and on mTLS inbound listeners the multiplexed transport for
 * HTTP/1.1 traffic from peer sidecars (sidecar/mux/). Plain listeners tell the first two
 * apart by the HTTP/2 connection preface (gRPC clients speak h2c with prior knowledge); TLS
 * listeners by ALPN. The choice is made once per connection.
 *
 * The plain outbound and `--upstream` listeners also take HTTP CONNECT (`tunnels`), as
 * undici's ProxyAgent opens one to its HTTP_PROXY even for http:// URLs: answered `200
 * Connection Established`, what the tunnel carries is one more client connection of the same
 * listener, sniffed and limited as any, its requests routed by their own Host or :authority.
 *
 * Parse errors never reach the pipeline: `clientError` answers them on the raw socket (431
 * for headers past `--max-request-headers`, 408 for a head too slow, 501 for a transfer coding
 * other than chunked, 400 otherwise, all with `x-skein-reason: bad-request` and a Proxy-Status
 * entry naming the listener's sidecar and direction) and only that connection closes. A peer sidecar's malformed or oversized mux request head is answered the
 * same way (400, 431 or 501) on its stream alone.
 */
import type { Server as HttpServer } from 'node:http';
import { hostPort } from '../common/net/host-port.js';
import { createServer as createHttp2Server, type Http2Server, type Http2Session } from 'node:http2';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createTlsServer, type SecureContextOptions, type Server as TlsServer, type TLSSocket, type TlsOptions } from 'node:tls';
import type { ProxyRequest, ProxyResponse } from './exchange.js';
import { goAwayGracefully, limitSession } from './h2-sessions.js';
import { refusalFrames as h2RefusalFrames } from './h2-refusal.js';
import { Http1Server, type Http1Handlers, type Http1Options } from './http1/server.js';
import { connectRefused, UNSUPPORTED_TRANSFER_CODING } from './http1/request-head.js';
import { ALPN as MUX_ALPN, refusalFrame } from './mux/frames.js';
import { MuxServerSession, type MuxHandlers, type MuxRequestListener, type MuxResponse } from './mux/server.js';
import { linger, sidecarReply, socketReply } from './stages/reply.js';

/**
 * The head limit: a request head must arrive within this, and a request body may go no longer
 * without a byte (HTTP/1.1: sidecar/http1/server.ts; HTTP/2: Exchange.checkBodyStall).
 */
export const HEAD_LIMIT_MS = 60_000;

/**
 * How long a client connection may go unused: between HTTP/1.1 requests, before a plain
 * connection's first byte, with no HTTP/2 stream open. Longer than the peers' pool idle
 * timeout, so a pooled connection is never closed under a request.
 */
const IDLE_LIMIT_MS = 65_000;

const HTTP1_OPTIONS: Omit<Http1Options, 'maxBodyBytes' | 'maxHeaderBytes'> = {
  // Streams (uploads, long polls) may last; the header deadline still stops slowloris, and a
  // request body may go no longer without a byte (sidecar/http1/server.ts).
  headersTimeoutMs: HEAD_LIMIT_MS,
  keepAliveTimeoutMs: IDLE_LIMIT_MS,
};

export interface ProxyListenerOptions {
  readonly onRequest: RequestListener;
  readonly onUpgrade: UpgradeListener;
  /** Told of each unparseable request answered (SPEC §8: a metric for it, and its access log line). */
  readonly onMalformed: MalformedListener;
  /** Largest request body let through on HTTP/1.1 and mux streams (`--max-request-body`); 0 for no limit. */
  readonly maxBodyBytes: number;
  /** Largest request head let through on HTTP/1.1 and mux streams, and request trailers (`--max-request-headers`); HTTP/2 heads are the pipeline's. */
  readonly maxHeaderBytes: number;
  /** This sidecar's name in the Proxy-Status entry of the refusals the listener answers itself (stages/reply.ts proxyName). */
  readonly proxyName: string;
  readonly tls?: TlsOptions;
  /**
   * Judges the caller of each TLS connection as its handshake completes, before any of it is
   * read (sidecar/authz/peer.ts): for one refused, the text it is told (`refuse`); undefined
   * for one let in.
   */
  readonly admit?: (socket: TLSSocket) => string | undefined;
  /** Accept peer sidecars' multiplexed connections (inbound listeners with TLS). */
  readonly mux?: boolean;
  /** What a client may leave unused; the defaults unless a test needs them short. */
  readonly limits?: ConnectionLimits;
  /** Take CONNECT tunnels (plain listeners only: the outbound and `--upstream` ones); without it a CONNECT is refused. */
  readonly tunnels?: TunnelOptions;
}

export interface TunnelOptions {
  /**
   * Told the target of a tunnel closed unserved because its client began TLS in it (it was
   * given an https:// URL, which the sidecar cannot route); counted as malformed besides.
   */
  readonly onTls: (target: string) => void;
}

export interface ConnectionLimits {
  /** A connection that sends no byte for this long (plain), or does not finish its handshake in it (TLS), is closed. */
  readonly silentMs: number;
  /** An HTTP/2 session with no stream open for this long is sent GOAWAY (h2-sessions.ts). */
  readonly h2IdleMs: number;
}

const DEFAULT_LIMITS: ConnectionLimits = { silentMs: IDLE_LIMIT_MS, h2IdleMs: IDLE_LIMIT_MS };

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n');
/** A TLS record's first byte when it carries a handshake message (a ClientHello, first). */
const TLS_HANDSHAKE = 0x16;
/** RFC 9110 §9.3.6: a 2xx answer to CONNECT has no Content-Length or Transfer-Encoding, and no body. */
const CONNECTION_ESTABLISHED = Buffer.from('HTTP/1.1 200 Connection Established\r\n\r\n', 'latin1');

/** An unparseable request was answered with `status` (400, 408, 431, 501), the answer saying `detail`. */
export type MalformedListener = (status: number, detail: string) => void;
export type RequestListener = (req: ProxyRequest, res: ProxyResponse) => void;
export type UpgradeListener = (req: ProxyRequest, socket: Socket, head: Buffer) => void;

/** Answers a request that could not be parsed, and says so to onMalformed unless the connection was just closed. */
function answerParseError(proxy: string, err: Error & { code?: string }, socket: Socket, head: boolean, onMalformed: MalformedListener): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const status = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : refusalStatus(err);
  const text = status === 408 ? 'request headers not received in time' : refusalText(err, status);
  socketReply(socket, proxy, status, 'bad-request', text, head);
  onMalformed(status, text);
}

/** The same for a request refused on a stream of its own (a peer's mux request head, heads.ts; an HTTP/2 CONNECT): the connection serves on. */
function answerStreamParseError(proxy: string, err: Error & { code?: string }, res: MuxResponse | ProxyResponse, onMalformed: MalformedListener): void {
  const status = refusalStatus(err);
  const text = refusalText(err, status);
  onMalformed(sidecarReply(res as unknown as ProxyResponse, proxy, 'bad-request', text, false, status), text);
}

/** 431 for a head past the limit (http1/request-head.ts headTooLarge), 501 for a transfer coding the sidecar does not apply (RFC 9112 §6.1), else 400. */
function refusalStatus(err: Error & { code?: string }): number {
  return err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === UNSUPPORTED_TRANSFER_CODING ? 501 : 400;
}

/** A head past the limit is told just that: its message names the limit and the flag that sets it. */
function refusalText(err: Error & { code?: string }, status: number): string {
  if (status === 431) return err.message;
  return `${status === 501 ? 'unsupported' : 'malformed'} HTTP request: ${err.message} (${err.code})`;
}

/**
 * Closes a connection whose caller was refused, processing none of it. A peer sidecar on the
 * mux or over HTTP/2 is told why first (mux/frames.ts REFUSED; an HTTP/2 GOAWAY, h2-refusal.ts),
 * and what it sent meanwhile is read and dropped until it closes, so that no reset of unread
 * bytes overtakes the refusal. HTTP/1.1 (a peer's WebSocket upgrade) has no way to say it: closed.
 */
function refuse(socket: TLSSocket, why: string): void {
  const refusal = socket.alpnProtocol === MUX_ALPN ? refusalFrame(why) : socket.alpnProtocol === 'h2' ? h2RefusalFrames(why) : undefined;
  if (refusal === undefined) {
    socket.destroy();
    return;
  }
  socket.end(refusal);
  linger(socket);
}

/** One listener: the front server and the protocol servers behind it. */
export class ProxyListener {
  readonly http1: Http1Server;
  readonly http2: Http2Server;
  readonly front: NetServer | TlsServer;
  private readonly sessions = new Set<Http2Session>();
  private readonly muxSessions = new Set<MuxServerSession>();
  private readonly onMux: MuxHandlers | null;
  private readonly maxBodyBytes: number;
  private readonly maxHeaderBytes: number;
  private readonly silentMs: number;
  private readonly onMalformed: MalformedListener;
  private readonly tunnels: TunnelOptions | undefined;
  private draining = false;
  private accepting = true;

  constructor(options: ProxyListenerOptions) {
    const { onRequest, onUpgrade, onMalformed, proxyName, tls, admit, mux = false, limits = DEFAULT_LIMITS } = options;
    // A TLS listener's callers are peer sidecars, which never tunnel: what a tunnel carries is sniffed as plain.
    const tunnels = tls === undefined ? options.tunnels : undefined;
    this.silentMs = limits.silentMs;
    this.onMalformed = onMalformed;
    this.tunnels = tunnels;
    this.maxBodyBytes = options.maxBodyBytes;
    this.maxHeaderBytes = options.maxHeaderBytes;
    const clientError = (err: Error & { code?: string }, socket: Socket, head: boolean): void => answerParseError(proxyName, err, socket, head, onMalformed);
    this.onMux = mux ? { request: onRequest as unknown as MuxRequestListener, clientError: (err, res) => answerStreamParseError(proxyName, err, res, onMalformed) } : null;
    // The parser refuses a missing HTTP/1.1 Host; an HTTP/1.0 one is the pipeline's to judge (dedicated ports).
    // A CONNECT taken comes as an upgrade does (request-head.ts): told apart here, off the path of other requests.
    const upgrade: Http1Handlers['upgrade'] =
      tunnels === undefined ? (onUpgrade as never) : (req, socket, head) => (req.method === 'CONNECT' ? this.tunnel(req.url, socket, head) : onUpgrade(req as never, socket, head));
    const handlers: Http1Handlers = { request: onRequest as never, upgrade, clientError };
    this.http1 = new Http1Server(handlers, { ...HTTP1_OPTIONS, maxBodyBytes: options.maxBodyBytes, maxHeaderBytes: options.maxHeaderBytes, tunnels: tunnels !== undefined });
    // Node refuses a head of over 128 fields with a bare ENHANCE_YOUR_CALM reset; HTTP/1.1 has
    // no field count, only the byte limit, which the pipeline applies to HTTP/2 heads with a 431.
    // No maxHeaderListSize either: node takes any head up to --max-request-headers' maximum
    // (nghttp2 alone refuses a block of over 9 frames, 144 KiB, failing the session), and one
    // past its own limit would be a bare reset too, not the 431 that says why.
    this.http2 = createHttp2Server({ maxSessionMemory: 64, maxHeaderListPairs: 4096 }, onRequest as never);
    // node's limit would cut a quiet long stream: limitSession counts only time with no stream
    // open, and a request body that stalls is bounded by its exchange (HEAD_LIMIT_MS).
    this.http2.setTimeout(0);
    // node answers a CONNECT nobody listens for with a bare 405: refused as on HTTP/1.1 instead, with its reason and its count.
    this.http2.on('connect', (_req, res) => answerStreamParseError(proxyName, connectRefused(), res as unknown as ProxyResponse, onMalformed));
    this.http2.on('session', (session: Http2Session) => {
      this.sessions.add(session);
      limitSession(session, limits.h2IdleMs);
      session.on('close', () => this.sessions.delete(session));
      session.on('error', () => session.destroy());
      // One opened while draining gets GOAWAY too: after the stream it came with (refused, the
      // caller would retry it here), as an HTTP/1.1 connection gets its answer and Connection: close.
      // Once the drain is over (stopAccepting) nothing more is served: its streams are refused,
      // never begun, since a stream begun now would be reset by the close that follows.
      if (!this.accepting) session.close();
      else if (this.draining) session.once('stream', () => goAwayGracefully(session));
    });
    if (tls) {
      // noDelay: a response written as two TLS records must not wait for the peer's delayed ACK.
      const alpn = mux ? ['h2', MUX_ALPN, 'http/1.1'] : ['h2', 'http/1.1'];
      // A connection that never completes its handshake (silent, or half a ClientHello) is held
      // to the silent limit too; node only reports the timeout, so the socket is destroyed here.
      this.front = createTlsServer({ ...tls, ALPNProtocols: alpn, noDelay: true, handshakeTimeout: this.silentMs }, (socket) => {
        const refusal = admit?.(socket);
        if (refusal !== undefined) refuse(socket, refusal);
        else if (socket.alpnProtocol === MUX_ALPN) this.startMux(socket);
        else if (socket.alpnProtocol === 'h2') this.http2.emit('connection', socket);
        else this.http1.handle(socket);
      });
      this.front.on('tlsClientError', onTlsClientError);
    } else {
      this.front = createNetServer({ noDelay: true }, (socket) => {
        socket.on('error', () => socket.destroy());
        this.sniff(socket);
      });
    }
  }

  /**
   * HTTP/2 with prior knowledge starts with the connection preface; anything else is HTTP/1.x.
   * `tunnel`: the target of the CONNECT whose tunnel `socket` now carries.
   */
  private sniff(socket: Socket, tunnel?: string): void {
    // Until its first byte no parser's head timer runs: without this, a connection that never
    // sends anything would be held for ever.
    const silent = setTimeout(destroySocket, this.silentMs, socket);
    silent.unref();
    socket.once('close', () => clearTimeout(silent));
    socket.once('data', (chunk: Buffer) => {
      clearTimeout(silent);
      if (startsWith(chunk, H2_PREFACE)) {
        socket.pause();
        socket.unshift(chunk);
        // The session reads the unshifted preface itself (on the next tick); flowing now would lose it.
        this.http2.emit('connection', socket);
      } else if (tunnel !== undefined && chunk[0] === TLS_HANDSHAKE) this.refuseTlsInTunnel(socket, tunnel);
      else this.http1.handle(socket, chunk);
    });
  }

  /** A CONNECT taken: the tunnel is served as a new connection, what came past the CONNECT head its first bytes. */
  private tunnel(target: string, socket: Socket, rest: Buffer): void {
    socket.write(CONNECTION_ESTABLISHED);
    if (rest.length > 0) socket.unshift(rest);
    this.sniff(socket, target);
    socket.resume();
  }

  /**
   * The tunnel's client began a TLS handshake: it was given an https:// URL, which the sidecar
   * cannot route (the app calls http:// and the mesh adds mTLS). Closed unserved: an HTTP answer
   * would mean nothing to a TLS client.
   */
  private refuseTlsInTunnel(socket: Socket, target: string): void {
    socket.destroy();
    this.onMalformed(400, `TLS began in the CONNECT tunnel to ${target} (an https:// URL); the mesh routes http:// URLs and adds mTLS itself`);
    this.tunnels!.onTls(target);
  }

  private startMux(socket: Socket): void {
    const session = new MuxServerSession(socket, this.onMux!, (s) => this.muxSessions.delete(s), this.maxHeaderBytes, this.maxBodyBytes);
    this.muxSessions.add(session);
    if (this.draining) session.goAway();
  }

  on(event: 'tlsClientError', listener: (err: Error & { code?: string }, socket: Socket) => void): void {
    this.front.on(event, listener);
  }

  setSecureContext(options: SecureContextOptions): void {
    (this.front as TlsServer).setSecureContext?.(options);
  }

  /**
   * Draining: idle HTTP/1.1 connections close and busy ones close after their answer
   * (Http1Server.drain), HTTP/2 and mux clients are told to open no new streams.
   */
  drain(): void {
    this.draining = true;
    this.http1.drain();
    for (const s of this.sessions) goAwayGracefully(s);
    for (const s of this.muxSessions) s.goAway();
  }

  /**
   * The end of a drain: no new connection, and no new stream on an HTTP/2 session (one GOAWAY
   * naming the last stream taken, so one crossing it is refused and retried elsewhere); the
   * open ones finish. A session opened while draining served the stream it came with, which
   * may have begun after the drain found nothing in flight; one whose handshake ends from now
   * on serves none.
   */
  stopAccepting(): void {
    this.accepting = false;
    this.front.close();
    for (const s of this.sessions) s.close();
  }

  /**
   * Stops accepting and closes every connection; resolves once the HTTP/1.1 connections closing
   * after a whole answer have closed too, which takes up to `graceMs` (Http1Server.closeAllConnections).
   */
  close(graceMs: number): Promise<void> {
    this.front.close();
    for (const s of this.sessions) s.destroy();
    for (const s of this.muxSessions) s.destroy();
    return this.http1.closeAllConnections(graceMs);
  }

  /** Resolves with the port bound (the one asked for, or the one the system picked for 0). */
  listen(port: number, host: string): Promise<number> {
    return listen(this.front, port, host);
  }
}

function destroySocket(socket: Socket): void {
  socket.destroy();
}

/** node leaves a socket whose handshake failed or timed out open; others' listeners (the log) read it first. */
function onTlsClientError(_err: Error, socket: Socket): void {
  process.nextTick(destroySocket, socket);
}

/** The chunk begins like `prefix` (as far as either goes, and at least 3 bytes). */
function startsWith(chunk: Buffer, prefix: Buffer): boolean {
  const n = Math.min(chunk.length, prefix.length);
  return chunk.length >= 3 && chunk.compare(prefix, 0, n, 0, n) === 0;
}

/**
 * A listener could not bind its address. `flag` names the flag that chose it, with its value
 * (`--inbound-port 15006`), which only the command line knows (cli/commands/sidecar.ts adds
 * it), so the operator knows what to change.
 */
export class ListenError extends Error {
  readonly code: string | undefined;

  constructor(
    readonly host: string,
    readonly port: number,
    readonly reason: NodeJS.ErrnoException,
    readonly flag?: string,
  ) {
    super(`${flag ?? hostPort(host, port)}: ${bindFailure(reason)}`, { cause: reason });
    this.code = reason.code;
  }
}

function bindFailure(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'EADDRINUSE':
      return 'address already in use (EADDRINUSE)';
    case 'EADDRNOTAVAIL':
      return 'not an address of this host (EADDRNOTAVAIL)';
    case 'EACCES':
      return 'permission denied (EACCES)';
    default:
      return err.message;
  }
}

/** Resolves with the port bound (the one asked for, or the one the system picked for 0). */
export function listen(server: NetServer | HttpServer, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const fail = (err: NodeJS.ErrnoException): void => reject(new ListenError(host, port, err));
    server.once('error', fail);
    server.listen(port, host, () => {
      server.off('error', fail);
      resolve((server.address() as AddressInfo).port);
    });
  });
}
