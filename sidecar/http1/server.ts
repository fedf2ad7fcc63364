/**
 * Skein's HTTP/1.1 server for its proxy listeners, in place of node:http's: one object per
 * connection reading request heads (request-head.ts) and bodies (Content-Length or chunked)
 * straight off the socket, and responses written as one socket write where they fit (head
 * and body together). node:http builds an IncomingMessage and a ServerResponse stream pair
 * per request and writes head and body apart; that was the largest cost left in a sidecar
 * after the mux (measured in throw-away pairs: an outbound proxy on node:http spent 52 µs of
 * CPU per request, one on a raw socket 29 µs).
 *
 * Behaviour kept from node:http: keep-alive by version and Connection, requests on one
 * connection answered in order (a pipelined request waits, unparsed, for the answer before
 * it), `Expect: 100-continue` answered when the body is first read (see readMore), upgrades
 * (without a body) handed over with the bytes read past the head (a CONNECT too, where
 * `tunnels` takes it), a body the handler never
 * read drained before the next request, a 60 s limit on receiving a head and a 65 s idle
 * limit (checked by one sweep a second, not a timer per request), empty lines (CRLF) before a
 * request line ignored (RFC 9112 §2.2; up to the head limit). Parse errors go to
 * `clientError` with llhttp's codes; the connection then closes.
 *
 * A request body is the client's to send and the handler's to read: when nothing of it moves
 * for the head limit, the request fails (the pipeline answers, the connection closes after)
 * with a ClientBodyError (408) if the client sent nothing while the server was ready to read,
 * or a BodyNotReadError if the handler read nothing while the client had more for it. A
 * malformed chunked body fails the request with a ClientBodyError (400).
 */
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { ChunkedDecoder, type ChunkSink } from './chunked.js';
import { BodyNotReadError, ClientBodyError, IncomingRequest, type BodySource } from './incoming.js';
import { OutgoingBase } from './outgoing.js';
import { httpDate, isDateName } from '../../common/http/date.js';
import { HttpParseError } from '../../common/http/parse-error.js';
import { blankLinesAt, checkLineEnds, headTooLarge, parseRequestHead, type RequestHead } from './request-head.js';

export interface Http1Handlers {
  request(req: IncomingRequest, res: OutgoingResponse): void;
  upgrade(req: IncomingRequest, socket: Socket, head: Buffer): void;
  /** `head`: the request is a HEAD (its line says so), whose answer has no body (RFC 9110 §9.3.2). */
  clientError(err: HttpParseError, socket: Socket, head: boolean): void;
}

export interface Http1Options {
  readonly maxHeaderBytes: number;
  /** A head must arrive within this after its first byte; a request body may stall no longer. */
  readonly headersTimeoutMs: number;
  /** An idle keep-alive connection is closed after this. */
  readonly keepAliveTimeoutMs: number;
  /** Largest request body let through (SPEC §8); 0 for no limit. */
  readonly maxBodyBytes: number;
  /** A CONNECT is handed to the upgrade handler as an upgrade is (request-head.ts), not refused. */
  readonly tunnels?: boolean;
}

const CRLFCRLF = Buffer.from('\r\n\r\n');
const CONTINUE = Buffer.from('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');
/** Bodies (and pipelined requests) past this wait in the kernel, not here. */
const MAX_BUFFERED = 256 * 1024;
/** Head and body go out as one buffer up to this size, else as a corked pair. */
const COPY_LIMIT = 16 * 1024;

const enum State {
  /** Waiting for (or reading) a request head. */
  Head,
  Body,
  /** The request is read; its response is not done yet. */
  Answering,
  Closed,
}

export class Http1Server {
  private readonly connections = new Set<Http1Connection>();
  private sweeper: NodeJS.Timeout | undefined;
  /** Every connection closes after its answer in progress, and none goes back to waiting for a request. */
  draining = false;

  constructor(
    readonly handlers: Http1Handlers,
    readonly options: Http1Options,
  ) {}

  /** Serves `socket`; `first` is data a protocol sniffer already read from it. */
  handle(socket: Socket, first?: Buffer): void {
    const conn = new Http1Connection(this, socket);
    this.connections.add(conn);
    if (this.sweeper === undefined) {
      this.sweeper = setInterval(sweep, 1000, this);
      this.sweeper.unref();
    }
    if (first !== undefined) conn.onData(first);
  }

  forget(conn: Http1Connection): void {
    this.connections.delete(conn);
  }

  /**
   * Draining: connections waiting for a request close now; the others after their answer in
   * progress, which says `Connection: close` unless its head has gone out already (a long
   * stream: its connection then just ends after it, as the client was told nothing).
   */
  drain(): void {
    this.draining = true;
    for (const c of this.connections) {
      if (c.idle) c.socket.destroy();
      else if (c.response !== null) c.response.shouldKeepAlive = false;
    }
  }

  /**
   * Cuts every connection (the drain's end): an answer in progress is cut as OutgoingResponse.destroy
   * cuts it. One closing after a whole answer (its FIN sent) is left for up to `graceMs` to be
   * closed by the client, who has read that FIN or soon will: cut at once, a request it sent on
   * that connection meanwhile would be answered by the kernel with a reset, not a clean close.
   * Resolves when every connection is closed.
   */
  async closeAllConnections(graceMs = 0): Promise<void> {
    if (this.sweeper !== undefined) clearInterval(this.sweeper);
    this.sweeper = undefined;
    const closing: Promise<unknown>[] = [];
    for (const c of this.connections) {
      // Not events.once: it rejects on the 'error' a reset brings, and a reset closes the connection too.
      if (graceMs > 0 && c.closing) closing.push(new Promise((resolve) => c.socket.once('close', resolve)));
      else {
        c.response?.destroy();
        c.socket.destroy();
      }
    }
    if (closing.length === 0) return;
    const grace = setTimeout(destroyAll, graceMs, this.connections);
    await Promise.all(closing);
    clearTimeout(grace);
  }

  sweep(): void {
    const now = Date.now();
    for (const c of this.connections) c.checkTimeouts(now);
  }
}

function sweep(server: Http1Server): void {
  server.sweep();
}

function destroyAll(connections: Set<Http1Connection>): void {
  for (const c of connections) c.socket.destroy();
}

function onSocketData(this: Socket, chunk: Buffer): void {
  (this as WithConn)[CONN]!.onData(chunk);
}

function onSocketDrain(this: Socket): void {
  (this as WithConn)[CONN]!.response?.emit('drain');
}

function onSocketClose(this: Socket): void {
  (this as WithConn)[CONN]!.onClose();
}

function onSocketError(this: Socket): void {
  this.destroy();
}

const CONN = Symbol('skein.http1');
type WithConn = { [CONN]?: Http1Connection };

class Http1Connection implements BodySource, ChunkSink {
  state = State.Head;
  private buffered: Buffer | null = null;
  request: IncomingRequest | null = null;
  response: OutgoingResponse | null = null;
  /** Body bytes still to come (Content-Length), or -1 with a chunked decoder. */
  private bodyLeft = 0;
  private decoder: ChunkedDecoder | null = null;
  /** While `decoder` decodes: false once the request body's reader is full (see onChunk). */
  private bodyMore = true;
  /** The response ended before the request body did: the rest is read and dropped. */
  private discarding = false;
  /** The client waits for `100 Continue` before sending the body, and has not been sent it yet. */
  continuePending = false;
  private processing = false;
  /** How much of the head buffered so far was already searched and checked (readHead), so a head in many pieces costs one pass. */
  private headChecked = 0;
  /** Empty lines skipped before the head being read: dropped, but counted toward the head limit, so endless ones end in a 431. */
  private blankBytes = 0;
  /** Closed after an answer while the client may still send: what comes is dropped, for at most headersTimeoutMs. */
  private lingering = false;
  /**
   * When the current wait began: for a head, its first byte; when idle, the last response;
   * in a body, the last bytes in from the client or the last time the reader asked for more;
   * when lingering, the close.
   */
  private since = Date.now();

  constructor(
    private readonly server: Http1Server,
    readonly socket: Socket,
  ) {
    (socket as WithConn)[CONN] = this;
    socket.on('data', onSocketData);
    socket.on('drain', onSocketDrain);
    socket.on('close', onSocketClose);
    socket.on('error', onSocketError);
  }

  get idle(): boolean {
    return this.state === State.Head && this.buffered === null && this.response === null;
  }

  /** Its answers are over and its end sent (responseDone): what the client still sends is dropped. */
  get closing(): boolean {
    return this.state === State.Closed && this.response === null && this.socket.writableEnded;
  }

  onData(chunk: Buffer): void {
    if (this.state === State.Closed) return;
    if (this.buffered === null) {
      if (this.state !== State.Answering) this.since = Date.now();
      this.buffered = chunk;
    } else this.buffered = Buffer.concat([this.buffered, chunk]);
    this.process();
  }

  /** Works through buffered input as far as the state allows; re-entered calls just flag another round. */
  private process(): void {
    if (this.processing) return;
    this.processing = true;
    try {
      while (this.buffered !== null && this.state !== State.Closed) {
        if (this.state === State.Head) {
          if (!this.readHead()) break;
        } else if (this.state === State.Body) {
          if (!this.readBody()) break;
        } else {
          // Answering: a pipelined request waits for this response; past a limit, so does the socket.
          if (this.buffered.length > MAX_BUFFERED) this.socket.pause();
          break;
        }
      }
    } catch (err) {
      this.fail(err instanceof HttpParseError ? err : new HttpParseError('HPE_INTERNAL', (err as Error).message));
    } finally {
      this.processing = false;
    }
  }

  /** Reads one head if it is all here; false when more input is needed. */
  private readHead(): boolean {
    let buf = this.buffered!;
    const max = this.server.options.maxHeaderBytes;
    const blank = blankLinesAt(buf);
    if (blank > 0) {
      this.blankBytes += blank;
      this.headChecked = Math.max(0, this.headChecked - blank);
      buf = buf.subarray(blank);
      // Nothing but empty lines: the connection waits for a request as if they had not come.
      this.buffered = buf.length === 0 ? null : buf;
    }
    // The blank line may straddle the last piece: search from three bytes back.
    const end = buf.indexOf(CRLFCRLF, Math.max(0, this.headChecked - 3));
    if (end < 0) {
      if (this.blankBytes + buf.length > max) throw headTooLarge(max);
      this.headChecked = checkLineEnds(buf, this.headChecked);
      return false;
    }
    this.headChecked = 0;
    if (this.blankBytes + end > max) throw headTooLarge(max);
    this.blankBytes = 0;
    const head = parseRequestHead(buf.toString('latin1', 0, end), this.server.options.tunnels);
    this.buffered = end + 4 === buf.length ? null : buf.subarray(end + 4);
    const req = new IncomingRequest(this, this.socket, head.method, head.target, head.rawHeaders, head.minor);
    // An upgrade with a body is served as a plain request (Upgrade is hop-by-hop, and dropped):
    // the upgrade path sends nothing past the head before the endpoint has switched protocols.
    if (head.upgrade && head.contentLength <= 0 && !head.chunked) {
      this.handOver(req);
      return false;
    }
    const res = new OutgoingResponse(this, req, head);
    this.request = req;
    this.response = res;
    if (head.chunked) {
      this.decoder = new ChunkedDecoder(this.server.options.maxHeaderBytes, false);
      this.state = State.Body;
    } else if (head.contentLength > 0) {
      this.bodyLeft = head.contentLength;
      this.decoder = null;
      this.state = State.Body;
    } else {
      req.push(null);
      this.state = State.Answering;
    }
    // RFC 9110 §10.1.1: an HTTP/1.0 client's expectation is ignored.
    this.continuePending = head.expectContinue && head.minor === 1 && this.state === State.Body;
    this.server.handlers.request(req, res);
    return true;
  }

  /** Hands the socket and what was read past the head to the upgrade handler; this connection is done. */
  private handOver(req: IncomingRequest): void {
    const rest = this.buffered ?? Buffer.alloc(0);
    this.buffered = null;
    this.state = State.Closed;
    this.server.forget(this);
    const s = this.socket;
    s.off('data', onSocketData);
    s.off('drain', onSocketDrain);
    s.off('close', onSocketClose);
    s.off('error', onSocketError);
    (s as WithConn)[CONN] = undefined;
    s.pause();
    this.server.handlers.upgrade(req, s, rest);
  }

  /** ChunkSink: data of the chunked request body being decoded. */
  onChunk(chunk: Buffer): void {
    if (!this.discarding && !this.request!.pushBody(chunk)) this.bodyMore = false;
  }

  private readBody(): boolean {
    const buf = this.buffered!;
    const req = this.request!;
    // The client sends its body without waiting: a 100 would say nothing new (RFC 9110 §10.1.1).
    this.continuePending = false;
    let used: number;
    let more = true;
    if (this.decoder !== null) {
      this.bodyMore = true;
      used = this.decoder.push(buf, this);
      more = this.bodyMore;
      if (this.decoder.done) this.bodyDone();
    } else {
      used = Math.min(this.bodyLeft, buf.length);
      if (!this.discarding && !req.pushBody(used === buf.length ? buf : buf.subarray(0, used))) more = false;
      this.bodyLeft -= used;
      if (this.bodyLeft === 0) this.bodyDone();
    }
    this.buffered = used === buf.length ? null : buf.subarray(used);
    if (more) return true;
    // The reader is full: the socket waits until it asks for more (readMore).
    this.socket.pause();
    return false;
  }

  private bodyDone(): void {
    this.decoder = null;
    if (!this.discarding) this.request!.endBody();
    this.discarding = false;
    if (this.response === null) this.nextRequest();
    else this.state = State.Answering;
  }

  /**
   * The request body's reader wants data. A client that sent `Expect: 100-continue` is told
   * to go on only now: when the request is refused before its body is read (404, 403, 413…)
   * it never is, and is spared the upload (see OutgoingResponse.sendHead).
   */
  readMore(): void {
    if (this.continuePending) {
      this.continuePending = false;
      this.socket.write(CONTINUE);
      // The client sends its body only now.
      this.since = Date.now();
    }
    if (this.state !== State.Body) return;
    // The reader caught up: from now on the body waits for the client.
    if (this.socket.isPaused()) this.since = Date.now();
    this.socket.resume();
  }

  get maxBodyBytes(): number {
    return this.server.options.maxBodyBytes;
  }

  /** The response is written whole; `keepAlive` false closes the connection after it. */
  responseDone(keepAlive: boolean): void {
    this.response = null;
    if (!keepAlive) {
      // Answered before the body's end (past the limit, say): the client may still be sending, for a while.
      if (this.state === State.Body) this.linger();
      this.state = State.Closed;
      this.socket.end();
      // Whatever the client still sends is read and dropped, so the close is a FIN, never a reset that could cost it the answer.
      this.socket.resume();
      return;
    }
    if (this.state === State.Body) {
      // The handler answered before reading the whole body: read it to its end, then go on.
      this.discarding = true;
      this.since = Date.now();
      this.socket.resume();
      return;
    }
    this.nextRequest();
  }

  private nextRequest(): void {
    // Draining: an answer gets here only if it was done before the drain began, the rest of its
    // request body still coming then (read since). Its connection closes rather than wait for another.
    if (this.server.draining) {
      this.responseDone(false);
      return;
    }
    this.request = null;
    this.state = State.Head;
    this.since = Date.now();
    this.socket.resume();
    if (this.buffered !== null && !this.processing) {
      // A request pipelined behind the one just answered: parsed off this call stack, since
      // the response that ended is still finishing its own.
      setImmediate(resumeProcessing, this);
    }
  }

  resumeProcessing(): void {
    this.process();
  }

  checkTimeouts(now: number): void {
    const o = this.server.options;
    if (this.lingering) {
      if (now - this.since > o.headersTimeoutMs) this.socket.destroy();
      return;
    }
    if (this.state === State.Body) {
      // Paused, or owing the client its 100 Continue, the body waits for the request's reader; else for the client.
      if (now - this.since > o.headersTimeoutMs) this.bodyStalled(this.socket.isPaused() || this.continuePending);
      return;
    }
    if (this.state !== State.Head || this.response !== null) return;
    if (this.buffered !== null) {
      if (now - this.since > o.headersTimeoutMs) this.fail(new HttpParseError('ERR_HTTP_REQUEST_TIMEOUT', 'request headers not received in time'));
    } else if (now - this.since > o.keepAliveTimeoutMs) this.socket.destroy();
  }

  private fail(err: HttpParseError): void {
    if (this.state === State.Body && this.response !== null && err.code !== 'HPE_INTERNAL') {
      // A malformed chunked body: the client's, answered by the pipeline (not a cut the upstream
      // is blamed for); trailers past the head limit as a head past it is.
      this.abortBody(new ClientBodyError(`malformed request body: ${err.message} (${err.code})`, err.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400));
      return;
    }
    this.state = State.Closed;
    const buffered = this.buffered;
    this.buffered = null;
    if (this.response !== null || this.discarding) {
      // Mid-request, or the rest of an answered request's body: the connection is cut. Its
      // 'close' (onClose) then ends the response before the request body, in that order.
      this.socket.destroy();
      return;
    }
    const req = this.request;
    if (req !== null && !req.readableEnded) req.destroy();
    this.server.handlers.clientError(err, this.socket, buffered !== null && buffered.toString('latin1', 0, 5) === 'HEAD ');
  }

  /** Nothing of the request body moved for headersTimeoutMs: the client sent none, or (`unread`) the reader took none. */
  private bodyStalled(unread: boolean): void {
    if (this.response === null) {
      // The rest of an answered request's body, which nobody waits for.
      this.socket.destroy();
      return;
    }
    const seconds = this.server.options.headersTimeoutMs / 1000;
    this.abortBody(unread ? new BodyNotReadError(`none of the request body was read for ${seconds} s`) : new ClientBodyError(`the request body stalled: none of it came for ${seconds} s`, 408));
  }

  /**
   * The request body cannot be read to its end (`err` says why): the request fails with it,
   * so the pipeline answers it (or cuts an answer in progress) and drops its upstream
   * attempt; the connection closes after that answer. What the client still sends is read
   * and dropped.
   */
  private abortBody(err: Error): void {
    this.state = State.Closed;
    this.buffered = null;
    this.decoder = null;
    this.response!.refuseBody();
    this.linger();
    const req = this.request!;
    if (!req.destroyed) req.destroy(err);
  }

  /**
   * Closing while the client may still be sending: its bytes are read and dropped (so its
   * close is seen, and the answer is not lost to a reset of unread data), and the sweep cuts
   * the connection if it has not closed within headersTimeoutMs.
   */
  private linger(): void {
    if (this.lingering) return;
    this.lingering = true;
    this.since = Date.now();
    this.socket.resume();
  }

  onClose(): void {
    this.state = State.Closed;
    this.server.forget(this);
    // The response's 'close' first: the pipeline must see its caller gone before the request
    // body's end, or it blames the upstream for the cut body.
    const res = this.response;
    this.response = null;
    if (res !== null) res.close();
    const req = this.request;
    if (req !== null && !req.readableEnded && !req.destroyed) req.destroy();
  }
}

function resumeProcessing(conn: Http1Connection): void {
  conn.resumeProcessing();
}

/**
 * A response as the pipeline writes it: node:http's ServerResponse calls the stages use
 * (writeHead with a flat list or an object, write, end, addTrailers, destroy, 'drain',
 * 'close'). The head is held until the first write or end, so head and a small body leave
 * in one write.
 */
export class OutgoingResponse extends OutgoingBase {
  private head: string | null = null;
  private chunked = false;
  /** The body ends with the connection (an HTTP/1.0 caller's answer without a length). */
  private closeDelimited = false;
  private noBody = false;
  /** Body bytes the Content-Length sent still allows; -1 without one. */
  private left = -1;
  private keepAlive: boolean;

  constructor(
    private readonly conn: Http1Connection,
    private readonly req: IncomingRequest,
    head: RequestHead,
  ) {
    super();
    this.keepAlive = head.keepAlive;
  }

  /** false: the connection closes after this response (draining), with `Connection: close`. */
  get shouldKeepAlive(): boolean {
    return this.keepAlive;
  }

  set shouldKeepAlive(keep: boolean) {
    if (!keep) this.keepAlive = false;
  }

  /** The rest of the request body will not be read: the connection closes after this answer (see responseDone). */
  refuseBody(): void {
    this.keepAlive = false;
  }

  protected sendHead(status: number, reason: string, headers: readonly string[]): void {
    let text = `HTTP/1.1 ${status} ${reason}\r\n`;
    let length = -1;
    let dated = status < 200;
    // RFC 9112 §6.1: no Transfer-Encoding to an HTTP/1.0 client, nor on a 1xx or 204 answer.
    const codingsAllowed = this.req.httpVersionMinor === 1 && status !== 204 && status >= 200;
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!;
      if (name.length === 14 && name.toLowerCase() === 'content-length') length = Number(headers[i + 1]);
      else if (name.length === 17 && !codingsAllowed && name.toLowerCase() === 'transfer-encoding') continue;
      else if (!dated && isDateName(name)) dated = true;
      text += `${name}: ${headers[i + 1]}\r\n`;
    }
    if (!dated) text += `date: ${httpDate()}\r\n`;
    this.noBody = this.req.method === 'HEAD' || status === 204 || status === 304 || status < 200;
    this.left = this.noBody ? -1 : length;
    if (this.conn.continuePending) {
      // Answered before the body was asked for: the client may send it later or never, so
      // nothing after this answer can be told apart from it; the connection closes.
      this.conn.continuePending = false;
      this.keepAlive = false;
    }
    if (!this.noBody && !(length >= 0)) {
      // HTTP/1.0 has no chunking: the body ends when the connection does.
      if (this.req.httpVersionMinor === 1) {
        this.chunked = true;
        text += 'transfer-encoding: chunked\r\n';
      } else {
        this.closeDelimited = true;
        this.keepAlive = false;
      }
    }
    this.head = text;
  }

  /** The held head, ended with the `Connection` it needs as it leaves: a drain may have begun since writeHead. */
  private takeHead(): string {
    const head = this.head!;
    this.head = null;
    if (!this.keepAlive) return `${head}connection: close\r\n\r\n`;
    return this.req.httpVersionMinor === 0 ? `${head}connection: keep-alive\r\n\r\n` : `${head}\r\n`;
  }

  write(chunk: Buffer | string): boolean {
    if (this.closed || this.writableEnded) return false;
    if (!this.headersSent) this.writeHead(200);
    const body = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    if (this.noBody || body.length === 0) return this.flushHead();
    if (this.left >= 0 && (this.left -= body.length) < 0) return this.lengthBroken();
    return this.send(body, this.chunked ? `${body.length.toString(16)}\r\n` : '', this.chunked ? '\r\n' : '');
  }

  end(chunk?: Buffer | string): this {
    if (this.closed || this.writableEnded) return this;
    if (!this.headersSent) this.writeHead(200);
    this.writableEnded = true;
    const body = chunk === undefined || this.noBody ? undefined : typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    if (this.left >= 0 && (body === undefined ? 0 : body.length) !== this.left) {
      this.lengthBroken();
      return this;
    }
    let last = '';
    if (this.chunked) {
      last = '0\r\n';
      if (this.trailers !== null) for (const name in this.trailers) last += `${name}: ${this.trailers[name]}\r\n`;
      last += '\r\n';
    }
    if (body !== undefined && body.length > 0) this.send(body, this.chunked ? `${body.length.toString(16)}\r\n` : '', this.chunked ? `\r\n${last}` : '');
    else if (this.head !== null || last !== '') this.conn.socket.write(this.head === null ? last : this.takeHead() + last, 'latin1');
    this.close();
    this.conn.responseDone(this.keepAlive);
    return this;
  }

  /**
   * Takes back a head that is still held (written, but no body bytes or end yet), so that
   * another answer can take its place: the caller has received nothing of this one. False
   * once anything went out (the answer can then only be cut) or the response is closed.
   */
  retractHead(): boolean {
    if (!this.headersSent) return true;
    if (this.head === null || this.closed) return false;
    this.head = null;
    this.headersSent = false;
    this.chunked = false;
    this.closeDelimited = false;
    this.noBody = false;
    this.left = -1;
    return true;
  }

  /**
   * Cuts the response: the connection closes, and the client sees a truncated answer. A body
   * that ends with the connection is cut with a reset (RFC 9112 §8), as a plain close would tell
   * the client it was whole; a TLS connection's close without close_notify says so already.
   */
  destroy(): this {
    if (this.closed) return this;
    const socket = this.conn.socket;
    if (this.closeDelimited && !this.writableEnded && !(socket as TLSSocket).encrypted) socket.resetAndDestroy();
    else socket.destroy();
    this.close();
    return this;
  }

  /**
   * A body longer or shorter than the Content-Length sent: none of the excess goes out, and the
   * connection is cut, as the client would read the excess as the next answer or wait for the
   * missing bytes. What relays an answer checks its length first (mux/upstream.ts); this is the last guard.
   */
  private lengthBroken(): false {
    this.writableEnded = true;
    this.destroy();
    return false;
  }

  /** Writes the held head with `body` between `before` and `after` (chunk framing), in one write when small. */
  private send(body: Buffer, before: string, after: string): boolean {
    const socket = this.conn.socket;
    const prefix = this.head === null ? before : this.takeHead() + before;
    if (body.length <= COPY_LIMIT) {
      const out = Buffer.allocUnsafe(prefix.length + body.length + after.length);
      out.write(prefix, 0, 'latin1');
      body.copy(out, prefix.length);
      if (after.length > 0) out.write(after, prefix.length + body.length, 'latin1');
      return socket.write(out);
    }
    socket.cork();
    if (prefix.length > 0) socket.write(prefix, 'latin1');
    socket.write(body);
    if (after.length > 0) socket.write(after, 'latin1');
    socket.uncork();
    return !socket.writableNeedDrain;
  }

  private flushHead(): boolean {
    return this.head === null || this.conn.socket.write(this.takeHead(), 'latin1');
  }
}
