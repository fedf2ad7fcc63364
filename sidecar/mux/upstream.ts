/**
 * The client end of the sidecar-to-sidecar transport (frames.ts): one connection per peer
 * endpoint carrying every request to it, driven through `dispatch(options, handler)` like
 * the other upstream clients (cluster/upstream-dispatcher.ts), so the attempt loop does not
 * know which it talks to. It extends undici's Dispatcher, whose
 * `request()` (mirroring, tests) is built on `dispatch`.
 *
 * The first call opens the connection; calls made while it connects, or while MAX_STREAMS
 * are open on it, wait in a queue. A connection that gets GOAWAY (the peer drains) or fails
 * takes no new calls: its open streams finish or fail, and the next call opens a new
 * connection.
 *
 * A peer that refuses this sidecar's certificate does so once this side's handshake is over
 * (TLS 1.3), when calls may already have gone out on the connection: told by its GOAWAY with
 * REFUSED (frames.ts), or by a TLS alert before any byte of an answer, the calls on it fail as
 * never sent (`peerRefusal`, identity/outbound-connector.ts), which the attempt loop retries
 * as a connect failure, a POST too. A close or reset without either stays a reset.
 *
 * Keepalive: a connection that has heard nothing from the peer for `intervalMs` sends a
 * PING, and one that then hears nothing for `timeoutMs` more is closed, failing its calls
 * as a reset (which the retry policy may send elsewhere). Idle connections are checked too,
 * so a dead one is gone before the next call would have been sent on it. One timer per
 * connection (cluster/keepalive.ts), nothing per chunk read: silence is read off the socket's
 * byte count.
 *
 * The peer's answers are held to the rules an app's are (heads.ts, http1/response-head.ts):
 * a malformed head or trailers fails the call as an app's unparsable answer does
 * (`H1_MALFORMED`), a body whose DATA comes to more or less than its content-length as a
 * reset; either is retried per policy and resets the stream. None of the excess is handed
 * on, so a caller's keep-alive connection never reads it as an answer.
 */
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { SessionConnector } from '../cluster/h2-upstream.js';
import { H1_MALFORMED } from '../http1/client.js';
import type { ResponseHead } from '../http1/response-head.js';
import { DEFAULT_KEEPALIVE, KeepaliveTimer, TCP_KEEPALIVE_IDLE_MS, type Keepalive } from '../cluster/keepalive.js';
import { UpstreamCall } from '../cluster/upstream-call.js';
import { refusedByPeer } from '../cluster/connect-phase.js';
import { codedError, UpstreamDispatcher, type AnyHandler } from '../cluster/upstream-dispatcher.js';
import { HttpParseError } from '../../common/http/parse-error.js';
import { peerRefusal } from '../identity/outbound-connector.js';
import { parsePeerResponse, parsePeerTrailers } from './heads.js';
import { encodeHead, END_STREAM, FrameReader, FrameType, FrameWriter, MAX_STREAMS, REFUSED, SIDECAR_MADE, WINDOW } from './frames.js';
import { StreamTable } from './stream-table.js';

/** Codes for errors made here; `isConnectError` (stages/upstream.ts) knows the one that means nothing was sent. */
export const MUX_CLOSED = 'ERR_SKEIN_MUX_CLOSED';
/** The peer refused the stream over its stream limit (a peer with another limit than ours); retried as a reset. */
export const MUX_REFUSED = 'ERR_SKEIN_MUX_REFUSED';
const MUX_RESET = 'ERR_SKEIN_MUX_RESET';

/** Past this, a connection takes no new streams (ids are u32, odd from the client). */
const MAX_STREAM_ID = 0x7fff_ffff;

const PING_PAYLOAD = Buffer.from('skeinmux');

/** A call answered without trailers; undici's handlers (request()) want an object all the same. */
const NO_TRAILERS: Record<string, string> = Object.freeze({}) as Record<string, string>;

/** One call: queued, then one stream on one connection. */
class MuxCall extends UpstreamCall {
  conn: MuxConnection | null = null;
  id = 0;
  /** The handler asked to stop (onHeaders/onData returned false); DATA waits in `held`. */
  paused = false;
  held: Buffer[] | null = null;
  endHeld = false;
  /** Trailers that came while paused, delivered with the end on resume. */
  heldTrailers: Record<string, string> = NO_TRAILERS;
  /** The Request frame went out: the peer knows the stream (a reset is worth sending). */
  opened = false;
  /** Bytes handed to the handler and not yet credited back to the peer. */
  consumed = 0;
  /** Credit left for sending request body bytes. */
  sendWindow = WINDOW;
  /** Body bytes the answer's content-length still allows; -1 without one (or before the answer). */
  left = -1;
  /** The peer refused this sidecar's certificate, reading nothing of the connection (CallControl.refused). */
  refused = false;

  constructor(
    readonly owner: MuxUpstream,
    opts: Dispatcher.DispatchOptions,
    handler: AnyHandler,
  ) {
    super(opts, handler);
  }

  /** Ends the call with an error, once; tells the peer when the stream was open. */
  fail(err: Error, resetPeer: boolean): void {
    if (this.done) return;
    this.finish();
    if (resetPeer && this.opened && this.conn !== null) this.conn.reset(this.id, err.message);
    try {
      this.handler.onError(err);
    } catch {
      // The handler's own caller went away; nothing is left to end.
    }
  }

  protected override cancel(err: Error): void {
    if (this.conn === null) {
      // Still queued: it never goes out.
      if (this.owner.unqueue(this)) this.fail(err, false);
      return;
    }
    this.fail(err, true);
  }

  override finish(): void {
    super.finish();
    this.conn?.forget(this);
  }

  response(status: number, statusText: string, headers: string[], contentLength: number, end: boolean): void {
    if (this.done) return;
    // RFC 9110 §6.4.1: these never have content, whatever their content-length says.
    this.left = this.opts.method === 'HEAD' || status === 204 || status === 304 ? 0 : contentLength;
    if (!this.emitHeaders(status, headers, statusText)) this.paused = true;
    if (end) this.endOrHold();
  }

  data(chunk: Buffer, end: boolean): void {
    if (this.done) return;
    // Checked before any of the chunk is handed on: a caller's answer can then still be replaced.
    if (this.left >= 0 && ((this.left -= chunk.length) < 0 || (end && this.left > 0))) {
      this.failLength();
      return;
    }
    if (this.paused) (this.held ??= []).push(chunk);
    else this.deliver(chunk);
    if (end) this.endOrHold();
  }

  private deliver(chunk: Buffer): void {
    this.consumed += chunk.length;
    if (!this.emitData(chunk)) this.paused = true;
    else this.credit();
  }

  private credit(): void {
    if (this.consumed >= WINDOW / 2 && this.conn !== null && !this.done) {
      this.conn.window(this.id, this.consumed);
      this.consumed = 0;
    }
  }

  /** The stream ended (with trailers, or none): completes now, or on resume when paused, after the held DATA. */
  endOrHold(trailers: Record<string, string> = NO_TRAILERS): void {
    if (this.done) return;
    if (this.left > 0) {
      this.failLength();
      return;
    }
    if (!this.paused) {
      this.complete(trailers);
      return;
    }
    this.endHeld = true;
    this.heldTrailers = trailers;
  }

  /** The answer's DATA came to more than its content-length, or ended short of it. */
  private failLength(): void {
    const why = this.left < 0 ? 'sent more DATA than its content-length' : `ended the stream ${this.left} bytes short of its content-length`;
    this.fail(codedError(MUX_RESET, `the peer ${why}`), true);
  }

  resume(): void {
    if (!this.paused || this.done) return;
    this.paused = false;
    const held = this.held;
    this.held = null;
    if (held !== null) {
      for (const chunk of held) {
        if (this.paused || this.done) {
          // Paused again: the rest waits for the next resume.
          (this.held ??= []).push(chunk);
          continue;
        }
        this.deliver(chunk);
      }
    }
    if (!this.paused && !this.done) {
      this.credit();
      if (this.endHeld) this.complete(this.heldTrailers);
    }
  }

  complete(trailers: Record<string, string>): void {
    if (this.done) return;
    if (!this.responded) {
      this.fail(codedError(MUX_RESET, 'the stream ended without a response'), true);
      return;
    }
    // The answer is whole while the request body still flows: the peer no longer wants it.
    if (this.body !== null && this.conn !== null) this.conn.reset(this.id, 'response complete');
    this.finish();
    try {
      this.handler.onComplete(trailers);
    } catch {
      // The call is over; the exchange learns of its broken caller from the caller's own 'close'.
    }
  }

  /** Sends the request body: a buffer at once, a stream chunk by chunk within the peer's credit. */
  sendBody(conn: MuxConnection, body: string | Buffer | Uint8Array | Readable): void {
    if (typeof body === 'string' || body instanceof Uint8Array) {
      conn.writer.data(END_STREAM, this.id, typeof body === 'string' ? Buffer.from(body) : Buffer.isBuffer(body) ? body : Buffer.from(body));
      return;
    }
    this.feed(body);
  }

  bodyChunk(chunk: Buffer): boolean {
    if (this.done || this.conn === null) return true;
    this.conn.writer.data(0, this.id, chunk);
    this.sendWindow -= chunk.length;
    return this.sendWindow > 0;
  }

  bodyEnd(): void {
    this.body = null;
    if (!this.done && this.conn !== null) this.conn.writer.empty(FrameType.Data, END_STREAM, this.id);
  }

  credited(bytes: number): void {
    this.sendWindow += bytes;
    if (this.sendWindow > 0 && this.body !== null && this.body.isPaused()) this.body.resume();
  }
}

/** One connection to the peer and the streams open on it. */
class MuxConnection {
  readonly writer: FrameWriter;
  private readonly reader: FrameReader;
  private readonly streams = new StreamTable<MuxCall>();
  private nextId = 1;
  /** No new streams: the peer sent GOAWAY, or this end is closing. */
  retired = false;
  private readonly keepaliveTimer: KeepaliveTimer;
  /** Why this end closed the connection, for the calls it fails. */
  private closeReason: string | null = null;
  /** The peer refused this sidecar's certificate (`peerRefusal`): what the calls it fails get. */
  private refusal: Error | null = null;
  /** A frame came from the peer: a refusal can no longer come (frames.ts, REFUSED). */
  private heard = false;

  constructor(
    readonly owner: MuxUpstream,
    readonly socket: Socket,
    keepalive: Keepalive,
  ) {
    this.writer = new FrameWriter(socket);
    this.reader = new FrameReader((type, flags, id, payload) => this.onFrame(type, flags, id, payload));
    socket.setNoDelay(true);
    socket.setKeepAlive(true, TCP_KEEPALIVE_IDLE_MS);
    this.keepaliveTimer = new KeepaliveTimer(
      keepalive,
      () => socket.bytesRead,
      () => this.ping(),
      () => this.giveUp(`${owner.origin} did not answer a ping within ${keepalive.timeoutMs} ms`),
    );
    socket.on('data', (chunk: Buffer) => {
      const error = this.reader.push(chunk);
      if (error !== undefined) socket.destroy(codedError(MUX_RESET, `protocol error from ${owner.origin}: ${error}`));
    });
    socket.on('error', (err: Error) => {
      this.refusal = peerRefusal(err, socket) ?? null;
    });
    socket.on('close', () => this.onClose());
  }

  get idle(): boolean {
    return this.streams.size === 0;
  }

  /** Takes a new stream now: open, and under the stream limit. */
  get hasRoom(): boolean {
    return !this.retired && this.streams.size < this.owner.maxStreams;
  }

  start(call: MuxCall): void {
    const id = this.nextId;
    this.nextId += 2;
    call.conn = this;
    call.id = id;
    this.streams.set(id, call);
    // Stream ids are 32 bits: long before they run out, later calls take a new connection.
    if (this.nextId > MAX_STREAM_ID) this.retire();
    // Announced first: an attempt given up while this connection was opening aborts here, unsent.
    if (!call.announce()) return;
    const { opts } = call;
    const body = opts.body as string | Buffer | Readable | null | undefined;
    const hasBody = body !== null && body !== undefined && !(typeof body === 'string' && body.length === 0);
    this.writer.text(FrameType.Request, hasBody ? 0 : END_STREAM, id, encodeHead(`${opts.method} ${opts.path}`, flatHeaders(opts.headers)));
    call.opened = true;
    if (hasBody) call.sendBody(this, body);
  }

  forget(call: MuxCall): void {
    if (this.streams.get(call.id) === call) this.streams.delete(call.id);
    if (this.retired && this.streams.size === 0) this.close();
    else if (!this.retired) this.owner.startWaiting(this);
  }

  reset(id: number, why: string): void {
    if (!this.socket.destroyed) this.writer.text(FrameType.Reset, 0, id, why.replace(/[^\x20-\xff]/g, ' '));
  }

  window(id: number, bytes: number): void {
    this.writer.number(FrameType.Window, id, bytes);
  }

  retire(): void {
    if (this.retired) return;
    this.retired = true;
    this.owner.retired(this);
    if (this.streams.size === 0) this.close();
  }

  close(): void {
    this.writer.flush();
    this.socket.end();
  }

  private ping(): boolean {
    if (this.socket.destroyed) return false;
    this.writer.ping(PING_PAYLOAD);
    return true;
  }

  /** Closes a connection the peer stopped answering on; its calls fail as reset. */
  private giveUp(reason: string): void {
    this.closeReason = reason;
    this.socket.destroy();
  }

  private onFrame(type: FrameType, flags: number, id: number, payload: Buffer): void {
    const first = !this.heard;
    this.heard = true;
    if (type === FrameType.GoAway) {
      // The peer refused this sidecar's certificate and read nothing: its calls fail as never
      // sent. The error also goes through the socket, to be reported as a handshake failure
      // (identity/outbound-connector.ts).
      if (first && (flags & REFUSED) !== 0) this.socket.destroy(refusedByPeer(payload.toString('latin1')));
      else this.retire();
      return;
    }
    if (type === FrameType.Ping) {
      // Any bytes count as an answer (see KeepaliveTimer); a peer's own PING is answered.
      this.writer.answerPing(flags, payload);
      return;
    }
    const call = this.streams.get(id);
    if (call === undefined) return;
    const end = (flags & END_STREAM) !== 0;
    switch (type) {
      case FrameType.Response: {
        let head: ResponseHead;
        try {
          head = parsePeerResponse(payload);
        } catch (err) {
          call.fail(malformed(this.owner.origin, 'response', err), true);
          return;
        }
        if ((flags & SIDECAR_MADE) !== 0) call.sidecarMade = true;
        call.response(head.status, head.reason, head.rawHeaders, head.contentLength, end);
        return;
      }
      case FrameType.Data:
        call.data(payload, end);
        return;
      case FrameType.Trailers: {
        let lines: string[];
        try {
          lines = parsePeerTrailers(payload);
        } catch (err) {
          call.fail(malformed(this.owner.origin, 'trailers', err), true);
          return;
        }
        const trailers: Record<string, string> = {};
        for (let i = 0; i < lines.length; i += 2) trailers[lines[i]!.toLowerCase()] = lines[i + 1]!;
        call.endOrHold(trailers);
        return;
      }
      case FrameType.Reset:
        call.fail(codedError((flags & REFUSED) !== 0 ? MUX_REFUSED : MUX_RESET, `the peer reset the stream: ${payload.toString('latin1')}`), false);
        return;
      case FrameType.Window:
        if (payload.length === 4) call.credited(payload.readUInt32BE(0));
        return;
      default:
        return;
    }
  }

  private onClose(): void {
    this.retired = true;
    this.keepaliveTimer.stop();
    this.owner.retired(this);
    const open = [...this.streams.values()];
    this.streams.clear();
    const why = this.closeReason ?? `the connection to ${this.owner.origin} closed`;
    for (const call of open) {
      call.refused = this.refusal !== null;
      call.fail(this.refusal ?? codedError('ECONNRESET', why), false);
    }
    this.owner.closed(this);
  }
}

/** A peer's head or trailers that break the HTTP/1.1 rules: failed as an app's unparsable answer is (a reset, its 503 saying why). */
function malformed(origin: string, what: string, err: unknown): Error {
  if (!(err instanceof HttpParseError)) throw err;
  return codedError(H1_MALFORMED, `malformed ${what} from ${origin}: ${err.message} (${err.code})`);
}

/** Request headers as a flat list (the attempt loop's form; objects from other callers). */
function flatHeaders(headers: Dispatcher.DispatchOptions['headers']): readonly string[] {
  if (headers === null || headers === undefined) return [];
  if (Array.isArray(headers)) return headers as string[];
  const out: string[] = [];
  for (const [name, value] of Object.entries(headers as Record<string, string | string[] | undefined>)) {
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) out.push(name, v);
    else out.push(name, String(value));
  }
  return out;
}

export class MuxUpstream extends UpstreamDispatcher<MuxConnection> {
  private conn: MuxConnection | null = null;
  private connecting = false;
  private queue: MuxCall[] = [];
  private isClosed = false;

  /** `origin` names the endpoint in errors; `connector` opens its transport (TLS to a peer, offering the mux by ALPN). */
  constructor(
    readonly origin: string,
    private readonly connector: SessionConnector,
    private readonly keepalive: Keepalive = DEFAULT_KEEPALIVE,
    readonly maxStreams = MAX_STREAMS,
  ) {
    super();
  }

  override dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const call = new MuxCall(this, opts, handler as unknown as AnyHandler);
    if (this.isClosed) {
      call.fail(codedError(MUX_CLOSED, `the upstream ${this.origin} is closed`), false);
      return false;
    }
    if (this.conn !== null && this.queue.length === 0 && this.conn.hasRoom) this.conn.start(call);
    else {
      this.queue.push(call);
      if (this.conn === null && !this.connecting) this.open();
    }
    return true;
  }

  /** Starts waiting calls on `conn` while it has room: it has just connected, or one of its streams ended. */
  startWaiting(conn: MuxConnection): void {
    if (conn !== this.conn) return;
    while (this.queue.length > 0 && conn.hasRoom) {
      const call = this.queue.shift()!;
      if (!call.done) conn.start(call);
    }
  }

  unqueue(call: MuxCall): boolean {
    const i = this.queue.indexOf(call);
    if (i < 0) return false;
    this.queue.splice(i, 1);
    return true;
  }

  private open(): void {
    this.connecting = true;
    const onTransport = (err: Error | null, socket: Socket | null | undefined): void => {
      this.connecting = false;
      if (err !== null || !socket || this.isClosed) {
        socket?.destroy();
        const error = err ?? codedError(MUX_CLOSED, `the upstream ${this.origin} is closed`);
        const failed = this.queue;
        this.queue = [];
        for (const call of failed) call.fail(error, false);
        return;
      }
      const conn = new MuxConnection(this, socket, this.keepalive);
      this.connections.add(conn);
      this.conn = conn;
      this.startWaiting(conn);
    };
    try {
      this.connector(onTransport);
    } catch (err) {
      onTransport(err as Error, null);
    }
  }

  retired(conn: MuxConnection): void {
    if (this.conn !== conn) return;
    this.conn = null;
    // Calls waiting for a stream on it go on a new connection.
    if (this.queue.length > 0 && !this.connecting && !this.isClosed) this.open();
  }

  closed(conn: MuxConnection): void {
    this.connectionClosed(conn);
  }

  /** Takes no new calls; open streams finish (or are cut, with `now`) and connections close. */
  protected shutdown(now: boolean): Promise<void> {
    this.isClosed = true;
    this.conn = null;
    const failed = this.queue;
    this.queue = [];
    for (const call of failed) call.fail(codedError(MUX_CLOSED, `the upstream ${this.origin} is closed`), false);
    const done = this.allClosed();
    for (const conn of [...this.connections]) {
      if (now) conn.socket.destroy();
      else conn.retire();
    }
    return done;
  }
}
