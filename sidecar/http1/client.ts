/**
 * Skein's HTTP/1.1 client for plain upstreams (the local app, and endpoints of a sidecar
 * without an identity): keep-alive connections, one request at a time each, reused newest
 * first. It is driven through `dispatch(options, handler)` with the attempt loop's handler
 * or undici's callback handlers (cluster/upstream-dispatcher.ts), like the mux and HTTP/2
 * clients, so the attempt loop does not know which it talks to, and extends undici's
 * Dispatcher, whose `request()` (mirroring, health checks) is built on `dispatch`.
 *
 * Why not undici's Pool: per request it builds a Request object, validates every header
 * value with a regular expression, parses responses in WebAssembly and copies each header
 * into a Buffer; that was 15% of an inbound sidecar's busy time, the largest share left that
 * was not a syscall. Here a request head is one string write and a response head one latin1
 * slice parsed by response-head.ts.
 *
 * Kept from undici: the server's `Keep-Alive: timeout` hint (an idle connection is dropped a
 * second before the server would drop it), 4 s idle otherwise; a connect timeout of 10 s
 * with undici's error code; 1xx answers skipped (an unasked-for 101 is malformed); a request whose connection closes before
 * its answer fails and is not sent again here (the attempt loop's retry policy decides), but for
 * the keep-alive race (H1Conn.onClose): an idempotent request that a reused connection loses
 * before any byte of an answer goes once more, on a new connection.
 *
 * An answer its handler gives up after the head (a retried 5xx: `discard`) keeps its
 * connection when the rest is small, read off and dropped (H1Conn.drain): else a flapping app
 * would cost a new TCP connection per retried answer. (Envoy keeps one only when the body is
 * empty, envoyproxy/envoy#5037; a small body costs little more to read than a new connection.)
 */
import { connect as netConnect, type Socket } from 'node:net';
import { hostPort } from '../../common/net/host-port.js';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { abandonedError, UpstreamCall } from '../cluster/upstream-call.js';
import { codedError, UpstreamDispatcher, type AnyHandler } from '../cluster/upstream-dispatcher.js';
import { ChunkedDecoder, type ChunkSink } from './chunked.js';
import { HttpParseError } from '../../common/http/parse-error.js';
import { checkPartialResponse, parseResponseHead, type ResponseHead } from './response-head.js';

/** Code of a call made on a closed upstream: nothing was sent (`isConnectError` knows it). */
export const H1_CLOSED = 'ERR_SKEIN_H1_CLOSED';
/** Code of a call whose answer could not be parsed (garbage, a status outside 100..599): a reset, for retries and outlier detection. */
export const H1_MALFORMED = 'ERR_SKEIN_H1_MALFORMED';
/**
 * Code of a call whose request body came to more or less than the content-length its head
 * declared: the app would read the excess as a request of its own, or wait for bytes that
 * never come, so none of it is written and the connection is cut. The pipeline refuses such
 * bodies first (mux/server.ts); this is the last guard.
 */
export const H1_BODY_LENGTH = 'ERR_SKEIN_H1_BODY_LENGTH';
const CONNECT_TIMEOUT_MS = 10_000;
const DEFAULT_IDLE_MS = 4_000;
/** Most bytes of a given-up answer read off to keep its connection (H1Conn.drain); past it, the connection is cut. */
const DRAIN_LIMIT = 64 * 1024;
/** How long reading them off may take: a slow rest costs a connection, not a socket held for it. */
const DRAIN_MS = 500;
const CRLFCRLF = Buffer.from('\r\n\r\n');
/** Request head and a buffered body go out as one buffer up to this size. */
const COPY_LIMIT = 16 * 1024;

export interface H1UpstreamOptions {
  readonly host: string;
  readonly port: number;
  /** Largest response head accepted. */
  readonly maxHeaderBytes: number;
}

/** An answer without trailers; undici's handlers (request()) want a list all the same. */
const NO_TRAILERS: string[] = [];

/** Methods whose request may be sent again when a reused connection dies before any answer (RFC 9110 §9.2.2, as Go's Transport picks them). */
function isResendable(call: H1Call): boolean {
  const m = call.opts.method;
  if (m !== 'GET' && m !== 'HEAD' && m !== 'OPTIONS' && m !== 'TRACE') return false;
  // A streamed body has gone, in part at least; a buffered one can go again.
  const body = call.opts.body;
  return body === null || body === undefined || typeof body === 'string' || body instanceof Uint8Array;
}

class H1Call extends UpstreamCall {
  conn: H1Conn | null = null;
  /** Sent again once, on a new connection (H1Conn.onClose): its handler was told of it the first time. */
  resent = false;
  /** An interim (1xx) answer came: the request reached the app, so its connection's close is no keep-alive race. */
  interim = false;

  resume(): void {
    this.conn?.socket.resume();
  }

  /** The rest of the answer goes unread by the handler: read off when small, and the connection kept. */
  override discard(): void {
    if (this.conn?.drain(this) === true) this.fail(abandonedError(), false);
    else this.abort();
  }

  /** Ends the call with an error, once; `cut` closes its connection (a response may be half read). */
  fail(err: Error, cut: boolean): void {
    if (this.done) return;
    this.finish();
    const conn = this.conn;
    this.conn = null;
    if (cut && conn !== null) conn.socket.destroy();
    try {
      this.handler.onError(err);
    } catch {
      // The handler's own caller went away; nothing is left to end.
    }
  }

  /** Stream request bodies go out chunked unless the caller gave their length. */
  bodyChunk(chunk: Buffer): boolean {
    const conn = this.conn;
    if (this.done || conn === null || conn.writeBody(chunk)) return true;
    conn.socket.once('drain', resumeBody.bind(null, this));
    return false;
  }

  bodyEnd(): void {
    this.body = null;
    if (!this.done) this.conn?.endBody();
  }
}

function bodyLengthError(more: boolean): Error {
  return codedError(H1_BODY_LENGTH, `the request body ${more ? 'ran past' : 'ended short of'} its content-length: not sent on`);
}

function resumeBody(call: H1Call): void {
  call.body?.resume();
}

function onSocketData(this: Socket, chunk: Buffer): void {
  (this as WithConn)[CONN]!.onData(chunk);
}

function onSocketClose(this: Socket): void {
  (this as WithConn)[CONN]!.onClose();
}

function onSocketError(this: Socket, err: Error): void {
  (this as WithConn)[CONN]!.error = err;
}

function onIdleTimeout(conn: H1Conn): void {
  conn.idleTimeout();
}

function onDrainTimeout(conn: H1Conn): void {
  conn.drainTimedOut();
}

const CONN = Symbol('skein.h1conn');
type WithConn = { [CONN]?: H1Conn };

const enum State {
  Head,
  Body,
  /** Body ends when the server closes the connection. */
  UntilClose,
}

class H1Conn implements ChunkSink {
  connected = false;
  call: H1Call | null = null;
  error: Error | null = null;
  private state = State.Head;
  private buffered: Buffer | null = null;
  private bodyLeft = 0;
  private decoder: ChunkedDecoder | null = null;
  /** The call whose chunked body `decoder` is decoding right now (see onChunk). */
  private decoding: H1Call | null = null;
  private chunkedRequest = false;
  /** Request body bytes the declared content-length still allows; -1 when chunked or bodiless. */
  private requestLeft = -1;
  /** How much of a response head still without its blank line was checked (checkPartialResponse). */
  private headChecked = 0;
  private keepAlive = true;
  private idleMs = DEFAULT_IDLE_MS;
  private idleTimer: NodeJS.Timeout | undefined = undefined;
  idleSince = 0;
  /** It served an answer and went back to the pool: the server may close it as a request goes out. */
  private reused = false;
  /** Bytes the answer being drained may still bring before the connection is cut; -1 when none is (see drain). */
  private drainLeft = -1;
  private drainTimer: NodeJS.Timeout | undefined = undefined;

  constructor(
    private readonly owner: H1Upstream,
    readonly socket: Socket,
  ) {
    (socket as WithConn)[CONN] = this;
    socket.setNoDelay(true);
    socket.on('data', onSocketData);
    socket.on('close', onSocketClose);
    socket.on('error', onSocketError);
    const timer = setTimeout(() => socket.destroy(codedError('UND_ERR_CONNECT_TIMEOUT', `connecting took longer than ${CONNECT_TIMEOUT_MS} ms`)), CONNECT_TIMEOUT_MS);
    socket.once('connect', () => {
      clearTimeout(timer);
      this.connected = true;
      if (this.call !== null) this.sendHead(this.call);
    });
    socket.once('close', () => clearTimeout(timer));
  }

  start(call: H1Call): void {
    this.call = call;
    call.conn = this;
    this.state = State.Head;
    this.keepAlive = true;
    if (this.connected) this.sendHead(call);
  }

  private sendHead(call: H1Call): void {
    if (!call.resent && !call.announce()) return;
    const { opts } = call;
    const body = opts.body as string | Buffer | Uint8Array | Readable | null | undefined;
    const bytes = body === null || body === undefined ? null : typeof body === 'string' ? Buffer.from(body) : body instanceof Uint8Array ? body : undefined;
    let head = `${opts.method} ${opts.path} HTTP/1.1\r\n`;
    let hasHost = false;
    let hasLength = false;
    let length = -1;
    const headers = opts.headers as readonly string[] | Record<string, string> | null | undefined;
    if (Array.isArray(headers)) {
      for (let i = 0; i < headers.length; i += 2) {
        const name = headers[i]!;
        if (name.length === 4 && name.toLowerCase() === 'host') hasHost = true;
        else if (name.length === 14 && name.toLowerCase() === 'content-length') {
          hasLength = true;
          length = Number(headers[i + 1]);
        }
        head += `${name}: ${headers[i + 1]}\r\n`;
      }
    } else if (headers !== null && headers !== undefined) {
      for (const name in headers) {
        const lower = name.toLowerCase();
        if (lower === 'host') hasHost = true;
        else if (lower === 'content-length') {
          hasLength = true;
          length = Number((headers as Record<string, string>)[name]);
        }
        head += `${name}: ${(headers as Record<string, string>)[name]}\r\n`;
      }
    }
    if (!hasHost) head += `host: ${this.owner.hostHeader}\r\n`;
    this.chunkedRequest = false;
    this.requestLeft = -1;
    if (bytes !== null && bytes !== undefined) {
      if (!hasLength) head += `content-length: ${bytes.length}\r\n`;
      else if (length >= 0 && bytes.length !== length) {
        call.fail(bodyLengthError(bytes.length > length), true);
        return;
      }
    } else if (bytes === undefined) {
      if (hasLength) this.requestLeft = length;
      else {
        this.chunkedRequest = true;
        head += 'transfer-encoding: chunked\r\n';
      }
    }
    head += '\r\n';
    if (bytes === null || bytes === undefined || bytes.length === 0) {
      this.socket.write(head, 'latin1');
    } else if (bytes.length <= COPY_LIMIT) {
      const out = Buffer.allocUnsafe(head.length + bytes.length);
      out.write(head, 0, 'latin1');
      out.set(bytes, head.length);
      this.socket.write(out);
    } else {
      this.socket.cork();
      this.socket.write(head, 'latin1');
      this.socket.write(bytes);
      this.socket.uncork();
    }
    if (bytes !== undefined) return;
    call.feed(body as Readable);
  }

  writeBody(chunk: Buffer): boolean {
    if (chunk.length === 0) return true;
    if (!this.chunkedRequest) {
      if (this.requestLeft >= 0 && (this.requestLeft -= chunk.length) < 0) {
        this.call?.fail(bodyLengthError(true), true);
        return true;
      }
      return this.socket.write(chunk);
    }
    this.socket.cork();
    this.socket.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
    this.socket.write(chunk);
    this.socket.write('\r\n', 'latin1');
    this.socket.uncork();
    return !this.socket.writableNeedDrain;
  }

  endBody(): void {
    if (this.chunkedRequest) this.socket.write('0\r\n\r\n', 'latin1');
    else if (this.requestLeft > 0) this.call?.fail(bodyLengthError(false), true);
  }

  onData(chunk: Buffer): void {
    const call = this.call;
    if (call === null) {
      // Bytes nobody asked for: the connection can no longer be trusted.
      this.socket.destroy();
      return;
    }
    this.buffered = this.buffered === null ? chunk : Buffer.concat([this.buffered, chunk]);
    try {
      this.process(call);
    } catch (err) {
      // An answer being drained (its call already ended) that turns out malformed is cut all the same.
      if (call.done) this.socket.destroy();
      else call.fail(err instanceof HttpParseError ? codedError(H1_MALFORMED, `malformed response from ${this.owner.origin}: ${err.message} (${err.code})`) : (err as Error), true);
    }
  }

  private process(call: H1Call): void {
    while (this.buffered !== null && this.call === call && (!call.done || this.drainLeft >= 0)) {
      if (this.state === State.Head) {
        const buf = this.buffered;
        const end = buf.indexOf(CRLFCRLF);
        const max = this.owner.options.maxHeaderBytes;
        if (end < 0 || end > max) {
          if (buf.length > max || end > max) throw new HttpParseError('HPE_HEADER_OVERFLOW', `response headers exceed ${max} bytes`);
          this.headChecked = checkPartialResponse(buf, this.headChecked);
          return;
        }
        this.headChecked = 0;
        const head = parseResponseHead(buf.toString('latin1', 0, end));
        this.buffered = end + 4 === buf.length ? null : buf.subarray(end + 4);
        if (head.status < 200) {
          // This client never asks for an upgrade (Upgrade is hop-by-hop and dropped): a 101 is
          // not an interim answer but a malformed one (RFC 9110 §15.2.2), failed like the others.
          if (head.status === 101) throw new HttpParseError('HPE_INVALID_STATUS', 'status 101 Switching Protocols to a request that asked for no upgrade');
          call.interim = true;
          continue;
        }
        this.onHead(call, head);
      } else {
        if (call.done && !this.drainMore(this.buffered.length)) return;
        this.readBody(call);
      }
    }
  }

  /**
   * The handler gave `call` up once its answer's head came (a retried 5xx): rather than cut
   * the connection, read the rest of the answer off, dropped, and keep the connection when
   * that rest is up to DRAIN_LIMIT bytes and comes within DRAIN_MS. The connection stays busy
   * until the answer's end, so no other request is sent on it before. False when it cannot be
   * kept: no head yet, a body that runs to the close or declares more than the limit, an
   * answer that closes the connection anyway, or a request body still going out.
   */
  drain(call: H1Call): boolean {
    if (this.call !== call || this.state !== State.Body || !this.keepAlive || call.body !== null || this.socket.destroyed) return false;
    if (this.decoder === null && this.bodyLeft > DRAIN_LIMIT) return false;
    this.drainLeft = DRAIN_LIMIT;
    this.drainTimer = setTimeout(onDrainTimeout, DRAIN_MS, this);
    this.socket.resume();
    return true;
  }

  /**
   * Counts `bytes` more of an answer being drained; past the limit the connection is cut
   * (false). Nothing else is in flight on it, so bytes past the answer's end would make it
   * unusable too: all that came counts, before any is decoded.
   */
  private drainMore(bytes: number): boolean {
    if ((this.drainLeft -= bytes) >= 0) return true;
    this.endDrain();
    this.socket.destroy();
    return false;
  }

  drainTimedOut(): void {
    this.endDrain();
    this.socket.destroy();
  }

  private endDrain(): void {
    this.drainLeft = -1;
    if (this.drainTimer === undefined) return;
    clearTimeout(this.drainTimer);
    this.drainTimer = undefined;
  }

  private onHead(call: H1Call, head: ResponseHead): void {
    this.keepAlive = head.keepAlive;
    if (head.keepAliveMs > 0) this.idleMs = Math.max(head.keepAliveMs - 1000, 500);
    const noBody = call.opts.method === 'HEAD' || head.status === 204 || head.status === 304;
    if (noBody || (!head.chunked && head.contentLength === 0)) this.bodyLeft = 0;
    else if (head.chunked) this.decoder = new ChunkedDecoder(this.owner.options.maxHeaderBytes, true);
    else if (head.contentLength > 0) this.bodyLeft = head.contentLength;
    else {
      this.keepAlive = false;
      this.state = State.UntilClose;
    }
    if (this.state !== State.UntilClose) this.state = State.Body;
    if (!call.emitHeaders(head.status, head.rawHeaders, head.reason)) this.socket.pause();
    if (call.done && this.drainLeft < 0) return;
    if (this.state === State.Body && this.decoder === null && this.bodyLeft === 0) this.complete(call);
  }

  private readBody(call: H1Call): void {
    const buf = this.buffered!;
    if (this.state === State.UntilClose) {
      this.buffered = null;
      this.deliver(call, buf);
      return;
    }
    let used: number;
    if (this.decoder !== null) {
      this.decoding = call;
      try {
        used = this.decoder.push(buf, this);
      } finally {
        this.decoding = null;
      }
    } else {
      used = Math.min(this.bodyLeft, buf.length);
      this.bodyLeft -= used;
      this.deliver(call, used === buf.length ? buf : buf.subarray(0, used));
    }
    this.buffered = used === buf.length ? null : buf.subarray(used);
    if (call.done && this.drainLeft < 0) return;
    if (this.decoder !== null ? this.decoder.done : this.bodyLeft === 0) this.complete(call);
  }

  /** ChunkSink: data of the chunked body being decoded. */
  onChunk(chunk: Buffer): void {
    if (this.decoding !== null) this.deliver(this.decoding, chunk);
  }

  private deliver(call: H1Call, chunk: Buffer): void {
    if (call.done || chunk.length === 0) return;
    if (!call.emitData(chunk)) this.socket.pause();
  }

  private complete(call: H1Call): void {
    const trailers = this.decoder?.trailers ?? NO_TRAILERS;
    this.decoder = null;
    this.state = State.Head;
    const sendingBody = call.body !== null;
    // A drained answer's handler was told of its end when it gave the call up.
    const drained = this.drainLeft >= 0;
    this.endDrain();
    call.finish();
    call.conn = null;
    this.call = null;
    // A request body still going out after the whole answer came: the connection cannot be reused.
    const reusable = this.keepAlive && this.buffered === null && !sendingBody && !this.socket.destroyed;
    this.buffered = null;
    if (reusable) {
      this.socket.resume();
      this.owner.release(this);
    } else this.socket.destroy();
    if (drained) return;
    try {
      call.handler.onComplete(trailers);
    } catch {
      // The call is over; the exchange learns of its broken caller from the caller's own 'close'.
    }
  }

  /** Arms the idle timer (one per connection, refreshed, never re-created). */
  parked(): void {
    this.reused = true;
    this.idleSince = Date.now();
    if (this.idleTimer === undefined) {
      this.idleTimer = setTimeout(onIdleTimeout, this.idleMs, this);
      this.idleTimer.unref();
    } else this.idleTimer.refresh();
  }

  idleTimeout(): void {
    if (this.call !== null) return;
    const left = this.idleMs - (Date.now() - this.idleSince);
    if (left > 0) {
      this.idleTimer = setTimeout(onIdleTimeout, left, this);
      this.idleTimer.unref();
      return;
    }
    this.socket.destroy();
  }

  onClose(): void {
    if (this.idleTimer !== undefined) clearTimeout(this.idleTimer);
    this.endDrain();
    this.owner.forget(this);
    const call = this.call;
    this.call = null;
    if (call === null || call.done) return;
    if (this.state === State.UntilClose) {
      // The body ran to the close, as the response said it would.
      if (this.buffered !== null) this.deliver(call, this.buffered);
      this.buffered = null;
      if (!call.done) this.completeAfterClose(call);
      return;
    }
    // The keep-alive race: the server closed a connection it had kept, as this request went
    // out on it. Nothing of an answer came, so an idempotent request goes once more, on a new
    // connection, as Go's Transport does; without it every such race costs the caller a retry.
    if (this.reused && this.connected && !call.responded && this.state === State.Head && this.buffered === null && !call.resent && !call.interim && !this.owner.closed && isResendable(call)) {
      call.resent = true;
      call.conn = null;
      this.owner.resend(call);
      return;
    }
    const err = this.error as (Error & { code?: string }) | null;
    const connectFailed = !this.connected && err !== null;
    call.fail(connectFailed ? err : codedError(err?.code ?? 'UND_ERR_SOCKET', `the connection to ${this.owner.origin} closed ${call.responded ? 'mid-response' : 'before an answer'}${err ? `: ${err.message}` : ''}`), false);
  }

  private completeAfterClose(call: H1Call): void {
    call.finish();
    call.conn = null;
    try {
      call.handler.onComplete(NO_TRAILERS);
    } catch {
      // See complete().
    }
  }
}

export class H1Upstream extends UpstreamDispatcher<H1Conn> {
  private idle: H1Conn[] = [];
  private isClosed = false;
  readonly origin: string;
  readonly hostHeader: string;

  constructor(readonly options: H1UpstreamOptions) {
    super();
    this.hostHeader = hostPort(options.host, options.port);
    this.origin = `http://${this.hostHeader}`;
  }

  override dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const call = new H1Call(opts, handler as unknown as AnyHandler);
    if (this.isClosed) {
      call.fail(codedError(H1_CLOSED, `the upstream ${this.origin} is closed`), false);
      return false;
    }
    this.connection().start(call);
    return true;
  }

  /** Takes no new calls (shutdown). */
  get closed(): boolean {
    return this.isClosed;
  }

  /** `call` once more, on a new connection (the keep-alive race, H1Conn.onClose; never once closed). */
  resend(call: H1Call): void {
    this.newConnection().start(call);
  }

  /** The newest idle connection, else a new one. */
  private connection(): H1Conn {
    for (let conn = this.idle.pop(); conn !== undefined; conn = this.idle.pop()) {
      // One the server has half-closed is on its way out: never send on it.
      if (!conn.socket.destroyed && !conn.socket.readableEnded && conn.call === null) return conn;
    }
    return this.newConnection();
  }

  private newConnection(): H1Conn {
    const conn = new H1Conn(this, netConnect({ host: this.options.host, port: this.options.port }));
    this.connections.add(conn);
    return conn;
  }

  release(conn: H1Conn): void {
    if (this.isClosed) {
      conn.socket.end();
      return;
    }
    conn.parked();
    this.idle.push(conn);
  }

  forget(conn: H1Conn): void {
    const i = this.idle.indexOf(conn);
    if (i >= 0) this.idle.splice(i, 1);
    this.connectionClosed(conn);
  }

  /** Takes no new calls; idle connections close at once, busy ones after their answer (or at once with `now`). */
  protected shutdown(now: boolean): Promise<void> {
    this.isClosed = true;
    const idle = this.idle;
    this.idle = [];
    for (const conn of idle) conn.socket.destroy();
    if (now) for (const conn of this.connections) conn.socket.destroy();
    return this.allClosed();
  }
}
