/**
 * HTTP/2 upstream for gRPC endpoints: one multiplexed node:http2 session per endpoint, driven
 * through `dispatch(options, handler)` like the HTTP/1.1 and mux clients
 * (upstream-dispatcher.ts), so the attempt loop does not know which it talks to. It extends
 * undici's Dispatcher, whose `request()` (used by mirroring) is built on `dispatch`.
 *
 * Why not undici's h2 client: it pipes each request body through `stream.pipeline` (an
 * AbortController, and a DOMException when it finishes, per call), copies every response
 * header into a Buffer, and completes a call on its trailers while DATA may still be
 * buffered. Here a body is forwarded chunk by chunk with the stream's own backpressure,
 * headers stay strings, and a call completes on 'end', after its last DATA frame.
 *
 * Sessions: the first call opens one; calls made while it connects wait in a queue. A
 * session that receives GOAWAY, errors or closes is no longer used for new calls (its open
 * streams finish); the next call opens a new one. Streams the peer refused (REFUSED_STREAM,
 * as a draining peer does with streams past its GOAWAY, or a gRPC server past its
 * max_connection_age) never reached the app (RFC 9113 §8.7), so they are sent again, once,
 * on a new session: a streamed body with what it had sent (kept until the response head, up
 * to RESEND_LIMIT) and then the rest. One that cannot go again fails as never sent
 * (H2_REFUSED, which the attempt loop reads as a connect failure), not as a reset.
 *
 * A peer sidecar that refuses this sidecar's certificate says so in a GOAWAY that took no
 * stream (sidecar/h2-refusal.ts), after the SETTINGS the calls waited for: every call on the
 * session fails as never sent, its error naming the refusal (`refusedByPeer`, a connect
 * failure), and the error goes through the socket too, for the connector to count it
 * (identity/outbound-connector.ts), as the mux does. A peer that closes without saying why
 * (a sidecar before 2026-12-07) still fails them as a session closed before it was set up.
 *
 * A peer sidecar marks the answers it makes itself with its TLS session's token
 * (sidecar/h2-sidecar-made.ts), which the call's control reports (`sidecarMade`), as the mux
 * reports its frame's flag: its answer is final, so a streamed body stops going to the peer
 * and is handed back whole, as after a refusal, for a retry elsewhere should the answer say
 * no app had the call (`upstream-connect-failure`; after a `timeout` one may have).
 *
 * Keepalive (sessions to peer sidecars): a session whose socket has read nothing for
 * `intervalMs` sends an HTTP/2 PING; if nothing arrives within `timeoutMs` more it is
 * destroyed, failing its calls as resets (retried per policy) and taking no new ones, as
 * the mux does (sidecar/mux/upstream.ts), with the same KeepaliveTimer (keepalive.ts): one
 * timer per session, nothing per call, silence read off the socket's byte count. Off for the
 * local app and for h2c endpoints, which may be gRPC servers that punish pings on idle
 * connections (GOAWAY too_many_pings).
 */
import { connect as h2connect, constants, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import type { Socket } from 'node:net';
import { addAbortSignal, type Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { ownEntry } from '../../common/config/own.js';
import { CallerFaultError } from '../../common/errors.js';
import { KeepaliveTimer, type Keepalive } from './keepalive.js';
import { hookBody, sentThenRest, unhookBody, type BodySink } from './request-body.js';
import { refusalLabel } from '../h2-refusal.js';
import { madeByPeerSidecar } from '../h2-sidecar-made.js';
import { handshakeTimedOut, refusedByPeer } from './connect-phase.js';
import { codedError, completeToHandler, headToHandler, startHandler, UpstreamDispatcher, type AnyHandler, type CallControl } from './upstream-dispatcher.js';

/** Opens the transport of one session: TLS to a peer sidecar (ALPN h2), or plain TCP to the local app. */
export type SessionConnector = (callback: (err: Error | null, socket: Socket | null) => void) => void;

/** One dispatch, across the streams it may take (a refused stream's call is sent again once); its handler's control. */
class Call implements CallControl {
  /** The stream now carrying it; null while it waits for a session. */
  active: H2Call | null = null;
  /** Set by the attempt loop's abort; a call waiting for a session then never goes out. */
  aborted: Error | null = null;
  resent = false;
  /** A streamed body's chunks the refused stream had sent, for the next stream to send first; null otherwise. */
  replay: Buffer[] | null = null;
  /** The streamed body had ended when its stream was refused: `replay` is all of it. */
  replayEnds = false;
  /** The peer refused the stream unprocessed and it could not go again, or went again and failed before a new stream took it (CallControl.refused). */
  refused = false;
  /** With `refused` or `sidecarMade`, its streamed body whole again (CallControl.returnedBody). */
  returnedBody: Buffer | Readable | null = null;
  /** The peer sidecar answered the call itself, its head marked with the session's token (CallControl.sidecarMade). */
  sidecarMade = false;
  /**
   * The call's own headers or body timeout (`opts.headersTimeout`, then `bodyTimeout` for the
   * whole body, as upstream-call.ts has them), for callers that set one: mirror copies. The
   * attempt loop sets neither (its timeouts are the exchange's), so its calls arm nothing.
   */
  timer: NodeJS.Timeout | undefined = undefined;

  constructor(
    readonly owner: H2Upstream,
    readonly opts: Dispatcher.DispatchOptions,
    readonly handler: AnyHandler,
  ) {}

  /** Arms the call's timeout of `ms` (none for 0 or none), in place of the one before. */
  arm(ms: number | null | undefined): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = ms !== undefined && ms !== null && ms > 0 ? setTimeout(onCallTimeout, ms, this) : undefined;
  }

  abort(err?: Error): void {
    this.owner.abandon(this, err);
  }

  /** A stream given up is reset (cancel): its session goes on. */
  discard(): void {
    this.abort();
  }

  resume(): void {
    this.active?.stream.resume();
  }

  /**
   * The call failed as never having reached the app: its streamed body goes back to the attempt
   * loop whole, `sent` (what its streams had sent of it) and then the rest, unless it had ended.
   */
  refuse(sent: Buffer[] | null, ended: boolean): void {
    this.refused = true;
    this.giveBack(sent, ended);
  }

  /**
   * The peer sidecar answered the call itself (h2-sidecar-made.ts): its answer is final, so a
   * streamed body stops going to it and goes back whole, as after a refusal, for the attempt
   * loop to send elsewhere should the answer say the app never had the call.
   */
  answeredByPeerSidecar(c: H2Call): void {
    this.sidecarMade = true;
    if (c.sent !== null) this.giveBack(c.sent, c.stopBody());
  }

  private giveBack(sent: Buffer[] | null, ended: boolean): void {
    if (sent === null) return;
    this.returnedBody = ended ? Buffer.concat(sent) : sentThenRest(sent, this.opts.body as Readable);
  }
}

/**
 * Tells a handler its call failed. A handler that throws has nothing left to end (its own caller went away).
 * A call being sent again that fails before a new stream takes it (a draining peer that has
 * closed its listener since refusing it) reached no app either: its control says so, and its
 * body goes back whole, so the attempt loop can retry it elsewhere as never sent, not take it
 * for a reset that may have been delivered.
 */
function reportError(call: Call, err: Error): void {
  if (call.timer !== undefined) clearTimeout(call.timer);
  if (call.resent && call.active === null) call.refuse(call.replay, call.replayEnds);
  try {
    call.handler.onError(err);
  } catch {
    // See above.
  }
}

function onCallTimeout(call: Call): void {
  call.timer = undefined;
  const responded = call.active?.responded === true;
  call.abort(codedError(responded ? 'UND_ERR_BODY_TIMEOUT' : 'UND_ERR_HEADERS_TIMEOUT', 'the upstream did not answer in time'));
}

/** Codes for errors made here; `isConnectError` (stages/upstream.ts) knows the ones that mean nothing was sent. */
export const H2_NOT_NEGOTIATED = 'ERR_SKEIN_H2_NOT_NEGOTIATED';
export const H2_SESSION_CLOSED = 'ERR_SKEIN_H2_SESSION_CLOSED';
const H2_STREAM_CLOSED = 'ERR_SKEIN_H2_STREAM_CLOSED';
/** The peer refused the stream unprocessed and it could not be sent again: nothing reached the app. */
export const H2_REFUSED = 'ERR_SKEIN_H2_REFUSED';
/** The peer did not answer a keepalive PING: its calls fail as resets. */
export const H2_PING_TIMEOUT = 'ERR_SKEIN_H2_PING_TIMEOUT';

const SESSION_OPTIONS = {
  // Windows as undici's h2 client had them: a 4 MiB message moves without a stall per 64 KiB.
  settings: { enablePush: false, initialWindowSize: 262_144 },
  maxSessionMemory: 64,
  // node resets an answer whose head or trailers hold over 128 fields (ENHANCE_YOUR_CALM), as
  // it would a request head on the listeners (listeners.ts): the limit is the head's bytes
  // (node's 64 KiB maxHeaderListSize), as for HTTP/1.1 answers.
  maxHeaderListPairs: 4096,
  // A request head the listeners took (up to --max-request-headers, at most 128 KiB of lines)
  // grows by the sidecar's own fields (trace context, x-request-id, XFCC): past node's default
  // send limit of 64 KiB node refuses it itself with a REFUSED_STREAM, which would read as the
  // peer's refusal of a stream it never saw.
  maxSendHeaderBlockLength: 262_144,
};
const CONNECTION_WINDOW = 524_288;
/** Most of a streamed request body kept for sending again on a new stream if the first is refused. */
const RESEND_LIMIT = 65_536;

/** One call in flight on one stream. Listeners are module functions that find it through the stream. */
class H2Call implements BodySink {
  done = false;
  responded = false;
  trailers: IncomingHttpHeaders | null = null;
  body: Readable | null = null;
  /**
   * What went out of a streamed body so far, kept until the response head (after which no
   * refusal can come) for a refused stream to be sent again, or handed back with the peer
   * sidecar's own answer; null past RESEND_LIMIT, once the head came, and when the call
   * cannot be sent again anyway.
   */
  sent: Buffer[] | null = null;
  sentBytes = 0;

  constructor(
    readonly owner: H2Upstream,
    readonly call: Call,
    readonly stream: ClientHttp2Stream,
    /** Kept here: node clears `stream.session` before a closed stream's events. */
    readonly session: ClientHttp2Session,
  ) {}

  /** Ends the call with an error, once; stops reading the request body (it stays the caller's). */
  fail(err: Error): void {
    if (this.done) return;
    this.done = true;
    this.unhookBody();
    if (!this.stream.destroyed) cancel(this.stream);
    // What the server sent and nobody will read (a paused answer, or DATA that came with the
    // head) is dropped: unread, it keeps the stream from ending, and so the session from closing.
    this.stream.resume();
    reportError(this.call, err);
  }

  /**
   * Handler callbacks run inside stream events: one that throws (the caller's own stream was
   * reset a moment ago, say) ends this call with that error, as undici does, instead of
   * escaping as an uncaught exception.
   */
  headers(status: number, raw: string[]): boolean {
    try {
      return headToHandler(this.call.handler, this.call, status, raw, '');
    } catch (err) {
      this.fail(err as Error);
      return true;
    }
  }

  data(chunk: Buffer): boolean {
    try {
      return this.call.handler.onData(chunk);
    } catch (err) {
      this.fail(err as Error);
      return true;
    }
  }

  complete(): void {
    this.done = true;
    if (this.call.timer !== undefined) clearTimeout(this.call.timer);
    // The answer is whole while the request body still flows (a bidi call the server ended), or
    // was taken back unfinished (a peer sidecar's own answer): stop sending it.
    const sending = !this.stream.writableEnded;
    this.unhookBody();
    if (sending && !this.stream.closed) this.stream.close();
    try {
      completeToHandler(this.call.handler, this.trailers as Record<string, string | string[]> | null);
    } catch {
      // The call is over and settled; the exchange learns of its broken caller from the caller's own 'close'.
    }
  }

  bodyChunk(chunk: Buffer): boolean {
    const sent = this.sent;
    if (sent !== null) {
      if ((this.sentBytes += chunk.length) > RESEND_LIMIT) this.sent = null;
      else sent.push(chunk);
    }
    return this.stream.write(chunk);
  }

  bodyEnd(): void {
    this.body = null;
    this.stream.off('drain', onStreamDrain);
    this.stream.end();
  }

  bodyFailed(err: Error): void {
    this.fail(err);
  }

  /** Takes the streamed body off this stream, paused for whoever sends it next; true if it had ended. */
  stopBody(): boolean {
    const ended = this.body === null;
    this.body?.pause();
    this.unhookBody();
    return ended;
  }

  unhookBody(): void {
    const body = this.body;
    if (body === null) return;
    this.body = null;
    unhookBody(body);
    this.stream.off('drain', onStreamDrain);
  }
}

/**
 * Resets `stream` with RST_STREAM CANCEL alone. node's `close(code)` ends the writable side
 * first, which sends END_STREAM ahead of the reset, so a server (node's among them: its request
 * ends before it is aborted) takes a body cut short, by the caller's reset, a deadline or a
 * limit, for a whole request. Destroyed with an AbortError, which `addAbortSignal` is node's
 * public way to give, it sends the reset and nothing else.
 */
function cancel(stream: ClientHttp2Stream): void {
  addAbortSignal(AbortSignal.abort(), stream);
}

const CALL = Symbol('skein.h2call');
type WithCall = { [CALL]?: H2Call };

function callOf(target: object): H2Call | undefined {
  return (target as WithCall)[CALL];
}

function onResponse(this: ClientHttp2Stream, headers: IncomingHttpHeaders): void {
  const c = callOf(this);
  if (c === undefined || c.done) return;
  const status = Number(headers[':status']);
  if (status < 200) return;
  c.responded = true;
  const call = c.call;
  if (call.timer !== undefined || call.opts.bodyTimeout) call.arm(call.opts.bodyTimeout);
  if (madeByPeerSidecar(c.session, headers)) call.answeredByPeerSidecar(c);
  c.sent = null;
  const raw: string[] = [];
  for (const name in headers) {
    if (name.charCodeAt(0) === 58 /* : */) continue;
    const value = headers[name];
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) raw.push(name, v);
    else raw.push(name, value);
  }
  const more = c.headers(status, raw);
  if (c.done) return;
  // The body is read only from here on (see STREAM_LISTENERS): paused first, the stream stays
  // paused when 'data' is added (a listener resumes only a stream never paused).
  if (!more) this.pause();
  this.on('data', onStreamData);
}

function onStreamData(this: ClientHttp2Stream, chunk: Buffer): void {
  const c = callOf(this);
  if (c === undefined || c.done) return;
  if (!c.data(chunk) && !c.done) this.pause();
}

function onTrailers(this: ClientHttp2Stream, trailers: IncomingHttpHeaders): void {
  const c = callOf(this);
  if (c !== undefined) c.trailers = trailers;
}

function onStreamEnd(this: ClientHttp2Stream): void {
  const c = callOf(this);
  if (c === undefined || c.done) return;
  if (!c.responded) {
    c.fail(codedError(H2_STREAM_CLOSED, 'HTTP/2 stream ended without a response'));
    return;
  }
  // A stream whose session went away (the app exited, the connection broke) ends, not errors,
  // with CANCEL as its code: without trailers its answer is cut short, not complete. With
  // NO_ERROR (or none) it cannot be told here from an answer that ended whole (a plain answer's
  // END_STREAM and the stream's close can come in one read): a gRPC answer, which must end with
  // a status, is judged by the exchange (onAttemptComplete).
  const code = this.rstCode;
  if (code !== undefined && code !== constants.NGHTTP2_NO_ERROR && c.trailers === null) {
    c.fail(closedEarly(code));
    return;
  }
  c.complete();
}

/**
 * The peer refused the stream unprocessed (RFC 9113 §8.7), or it was past the last stream
 * a GOAWAY took (§6.8, pastGoaway): the call goes again if it can,
 * else fails as never sent. One on a session whose peer refused this sidecar's certificate
 * fails as never sent, naming the refusal: sent again, it would only be refused again. False
 * for any other end of the stream.
 */
function settledAsRefused(stream: ClientHttp2Stream, c: H2Call): boolean {
  if (c.responded) return false;
  const refusal = c.owner.certificateRefusal(c.session);
  if (refusal === undefined) {
    if (stream.rstCode !== constants.NGHTTP2_REFUSED_STREAM && !c.owner.pastGoaway(c.session, stream)) return false;
    if (c.owner.resend(c)) return true;
  }
  c.call.refuse(c.sent, c.stopBody());
  c.fail(refusal ?? codedError(H2_REFUSED, 'the HTTP/2 stream was refused unprocessed (REFUSED_STREAM) and its body could not be sent again'));
  return true;
}

// A reset stream emits 'error' and then 'close'; a cancelled one only 'close'.
function onStreamError(this: ClientHttp2Stream, err: Error): void {
  const c = callOf(this);
  if (c === undefined || c.done || settledAsRefused(this, c)) return;
  c.fail(err);
}

function onStreamClose(this: ClientHttp2Stream): void {
  const c = callOf(this);
  if (c === undefined || c.done || settledAsRefused(this, c)) return;
  c.fail(closedEarly(this.rstCode));
}

function closedEarly(code: number): Error {
  return codedError(H2_STREAM_CLOSED, `HTTP/2 stream closed before the response was complete (code ${code})`);
}

function onStreamDrain(this: ClientHttp2Stream): void {
  callOf(this)?.body?.resume();
}

/**
 * No 'data' listener until the response head has been handled (onResponse adds it): node
 * emits 'response' (and 'trailers') on the next tick but pushes DATA at once, so a flowing
 * stream whose HEADERS and DATA frames came in one socket read emits the DATA first. The
 * handler would then get onData before onHeaders, and the exchange would write the body
 * under a bare `:status 200` head, fail on the real head (ERR_HTTP2_HEADERS_SENT) and cut its
 * caller's stream without a grpc-status (a grpc-js caller saw `13 INTERNAL: Received
 * RST_STREAM with code 0`). Unread, the DATA waits in the stream's buffer, and 'end' comes
 * only after it has been read.
 */
const STREAM_LISTENERS: readonly [string, (this: ClientHttp2Stream, ...args: any[]) => void][] = [
  ['response', onResponse],
  ['trailers', onTrailers],
  ['end', onStreamEnd],
  ['error', onStreamError],
  ['close', onStreamClose],
];

/** session.request() failures after which a fresh session can take the call. */
const SESSION_GONE = new Set(['ERR_HTTP2_OUT_OF_STREAMS', 'ERR_HTTP2_GOAWAY_SESSION', 'ERR_HTTP2_INVALID_SESSION']);

/**
 * nghttp2 (NGHTTP2_HD_MAX_NV) fails the whole session, every call on it, on a field name or value
 * longer than this as encoded, which is never longer than as written. A head within
 * --max-request-headers may hold one (HTTP/1.1 and the mux carry it): refused before it is sent.
 */
const MAX_FIELD_BYTES = 65_536;

/**
 * Request headers as node:http2 takes them: an object, `host` as `:authority`, repeated names as
 * arrays. Throws a CallerFaultError (431) for a field past MAX_FIELD_BYTES.
 */
function requestHeaders(opts: Dispatcher.DispatchOptions): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = { ':method': opts.method, ':path': opts.path };
  const flat = opts.headers as string[] | null | undefined;
  if (flat) {
    for (let i = 0; i < flat.length; i += 2) {
      let name = flat[i]!;
      if (/[A-Z]/.test(name)) name = name.toLowerCase();
      if (name === 'host') name = ':authority';
      const value = flat[i + 1]!;
      if (value.length > MAX_FIELD_BYTES || name.length > MAX_FIELD_BYTES) {
        throw new CallerFaultError(`the request cannot be sent over HTTP/2: its ${name.slice(0, 64)} field is over ${MAX_FIELD_BYTES} bytes, more than HTTP/2 peers take in one field`, 431);
      }
      const prev = ownEntry(out, name);
      if (prev === undefined) out[name] = value;
      else if (Array.isArray(prev)) prev.push(value);
      else out[name] = [String(prev), value];
    }
  }
  return out;
}

/** Keeps `session` alive per `keepalive` (keepalive.ts); its PING's ACK is read like any other bytes. */
function keepSessionAlive(origin: string, session: ClientHttp2Session, socket: Socket, keepalive: Keepalive): void {
  const timer = new KeepaliveTimer(
    keepalive,
    () => socket.bytesRead,
    () => {
      // node sends no PING on a closing session (it fails the callback at once), so none is out to time.
      if (session.closed || session.destroyed) return false;
      session.ping(ignorePingResult);
      return true;
    },
    () => session.destroy(codedError(H2_PING_TIMEOUT, `${origin} did not answer an HTTP/2 PING within ${keepalive.timeoutMs} ms`)),
  );
  session.once('close', () => timer.stop());
}

function ignorePingResult(): void {}

export class H2Upstream extends UpstreamDispatcher {
  private session: ClientHttp2Session | null = null;
  private connecting = false;
  private queue: Call[] = [];
  private closed = false;
  private readonly sessions = new Set<ClientHttp2Session>();
  /** Sessions whose peer refused this sidecar's certificate, and the error their calls fail with. */
  private readonly refusals = new WeakMap<ClientHttp2Session, Error>();
  /** Sessions that got a GOAWAY, and the last stream it says the peer took. */
  private readonly goaways = new WeakMap<ClientHttp2Session, number>();

  /**
   * `origin` names the endpoint (`https://host:port` to a peer, `http://…` to the app);
   * `connect` opens its transport; `keepalive`, when given, checks each session's peer.
   */
  constructor(
    private readonly origin: string,
    private readonly connector: SessionConnector,
    private readonly keepalive?: Keepalive,
  ) {
    super();
  }

  override dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const call = new Call(this, opts, handler as unknown as AnyHandler);
    if (opts.headersTimeout) call.arm(opts.headersTimeout);
    return this.enqueue(call);
  }

  private enqueue(call: Call): boolean {
    if (this.closed) {
      reportError(call, codedError(H2_SESSION_CLOSED, `the HTTP/2 upstream ${this.origin} is closed`));
      return false;
    }
    if (this.session !== null) this.start(this.session, call);
    else {
      this.queue.push(call);
      if (!this.connecting) this.open();
    }
    return true;
  }

  /** The attempt loop gave the call up: end its stream, or take it out of the queue. */
  abandon(call: Call, err: Error | undefined): void {
    if (call.aborted !== null) return;
    call.aborted = err ?? codedError(H2_STREAM_CLOSED, 'the attempt was abandoned');
    if (call.active !== null && !call.active.done) {
      call.active.fail(call.aborted);
      return;
    }
    const queued = this.queue.indexOf(call);
    if (queued >= 0) {
      this.queue.splice(queued, 1);
      reportError(call, call.aborted);
    }
  }

  /**
   * A refused stream's call goes out again, once, on a new session, if its body can be sent
   * again (none, a Buffer, or a stream whose sent part was kept): the refusing session takes
   * no more calls (a draining peer refuses all it has not started), and a peer that refuses
   * again gets the refusal reported. A streamed body still coming waits, paused, for the new stream.
   */
  resend(c: H2Call): boolean {
    const call = c.call;
    const body = call.opts.body;
    const streamed = body !== null && body !== undefined && !Buffer.isBuffer(body);
    if (call.resent || call.aborted !== null || (streamed && c.sent === null)) return false;
    call.resent = true;
    if (streamed) {
      call.replay = c.sent;
      call.replayEnds = c.stopBody();
    }
    c.done = true;
    call.active = null;
    this.retire(c.session);
    this.enqueue(call);
    return true;
  }

  private open(): void {
    this.connecting = true;
    const failQueue = (error: Error): void => {
      this.connecting = false;
      const failed = this.queue;
      this.queue = [];
      for (const call of failed) reportError(call, error);
    };
    const onTransport = (err: Error | null, socket: Socket | null | undefined): void => {
      if (err === null && socket && 'alpnProtocol' in socket && (socket as { alpnProtocol?: string | false }).alpnProtocol !== 'h2') {
        socket.destroy();
        err = codedError(H2_NOT_NEGOTIATED, `${this.origin} did not negotiate HTTP/2 (ALPN h2)`);
      }
      if (err !== null || !socket || this.closed) {
        socket?.destroy();
        failQueue(err ?? codedError(H2_SESSION_CLOSED, `the HTTP/2 upstream ${this.origin} is closed`));
        return;
      }
      const session = h2connect(this.origin, { ...SESSION_OPTIONS, createConnection: () => socket });
      this.sessions.add(session);
      let established = false;
      // Calls wait for the peer's first SETTINGS (node's 'connect' only means the socket is
      // up): a session that dies before them (an h2c app that speaks only HTTP/1.1, a GOAWAY
      // at once) sent nothing, which the attempt loop must know.
      session.once('remoteSettings', () => {
        if (this.closed) {
          failQueue(codedError(H2_SESSION_CLOSED, `the HTTP/2 upstream ${this.origin} is closed`));
          return;
        }
        established = true;
        this.connecting = false;
        session.setLocalWindowSize(CONNECTION_WINDOW);
        if (this.keepalive !== undefined) keepSessionAlive(this.origin, session, socket, this.keepalive);
        this.session = session;
        const waiting = this.queue;
        this.queue = [];
        for (const call of waiting) this.start(session, call);
      });
      // Streams see a session's failure as their own errors; the session is only retired here.
      session.on('error', () => this.retire(session));
      session.once('goaway', (_code: number, lastStreamID: number, opaqueData?: Buffer) => {
        this.goaways.set(session, lastStreamID);
        const label = refusalLabel(lastStreamID, opaqueData);
        if (label !== undefined) {
          const refusal = refusedByPeer(label);
          this.refusals.set(session, refusal);
          socket.destroy(refusal);
        }
        this.retire(session);
      });
      session.once('close', () => {
        this.sessions.delete(session);
        this.retire(session);
        if (!established) failQueue(this.refusals.get(session) ?? codedError(H2_SESSION_CLOSED, `the HTTP/2 session to ${this.origin} closed before it was set up`));
      });
    };
    try {
      this.connector(onTransport);
    } catch (err) {
      failQueue(err as Error);
    }
  }

  /**
   * `stream` is past the last one a GOAWAY on `session` said its peer took, so it was not
   * processed (RFC 9113 §6.8), whatever the GOAWAY's code: node destroys a session at one with
   * an error code (a gRPC server's ENHANCE_YOUR_CALM, an INTERNAL_ERROR), failing every stream
   * with the session's error, where nghttp2 refuses such streams (REFUSED_STREAM) at a NO_ERROR one.
   */
  pastGoaway(session: ClientHttp2Session, stream: ClientHttp2Stream): boolean {
    const last = this.goaways.get(session);
    return last !== undefined && stream.id !== undefined && stream.id > last;
  }

  /** The error of `session`'s calls when its peer refused this sidecar's certificate, else undefined. */
  certificateRefusal(session: ClientHttp2Session): Error | undefined {
    return this.refusals.get(session);
  }

  /** New calls stop using `session`; its open streams finish. */
  private retire(session: ClientHttp2Session): void {
    if (this.session === session) this.session = null;
    if (!session.closed && !session.destroyed) session.close();
  }

  private start(session: ClientHttp2Session, call: Call): void {
    if (call.aborted !== null) {
      reportError(call, call.aborted);
      return;
    }
    const { opts, handler } = call;
    const body = opts.body as Buffer | Readable | null | undefined;
    const hasBody = body !== null && body !== undefined;
    let stream: ClientHttp2Stream;
    try {
      stream = session.request(requestHeaders(opts), { endStream: !hasBody });
    } catch (err) {
      // Out of stream ids, or the session closed under us: a fresh session takes the call.
      if (SESSION_GONE.has((err as { code?: string }).code ?? '')) {
        this.retire(session);
        this.enqueue(call);
      } else {
        // Node refused the head before sending it (a field HTTP/2 cannot carry, e.g. a repeated
        // User-Agent), or requestHeaders did (a field too long): the request's fault, never the endpoint's.
        reportError(call, err instanceof CallerFaultError ? err : new CallerFaultError(`the request cannot be sent over HTTP/2: ${(err as Error).message}`, 400));
      }
      return;
    }
    const c = new H2Call(this, call, stream, session);
    call.active = c;
    (stream as WithCall)[CALL] = c;
    for (const [event, listener] of STREAM_LISTENERS) stream.on(event, listener);
    try {
      startHandler(handler, call);
    } catch (err) {
      c.fail(err as Error);
    }
    if (c.done || !hasBody) return;
    if (Buffer.isBuffer(body)) {
      stream.end(body);
      return;
    }
    // What goes out is kept (up to RESEND_LIMIT) on a stream sent again too: refused again, the
    // call hands its body back whole (Call.refuse).
    const replay = call.replay;
    c.sent = replay ?? [];
    if (replay !== null) {
      call.replay = null;
      for (const chunk of replay) {
        c.sentBytes += chunk.length;
        stream.write(chunk);
      }
      if (call.replayEnds) {
        stream.end();
        return;
      }
    }
    c.body = body;
    stream.on('drain', onStreamDrain);
    hookBody(body, c);
  }

  protected shutdown(now: boolean): Promise<void> {
    this.closed = true;
    this.session = null;
    const waiting = [...this.sessions].map((s) => new Promise<void>((resolve) => (s.closed && s.destroyed ? resolve() : s.once('close', () => resolve()))));
    for (const s of this.sessions) {
      if (now) s.destroy();
      else s.close();
    }
    return Promise.all(waiting).then(() => undefined);
  }
}

/** How long a session's transport may take to connect, as undici's connectors allow. */
export const CONNECT_TIMEOUT_MS = 10_000;

/**
 * A connector that opens a socket and hands it over once `ready` fires (`connect` for TCP,
 * `secureConnect` for TLS), or fails it after CONNECT_TIMEOUT_MS with undici's code for
 * that, which the attempt loop reads as "nothing was sent"; or with `TLS_HANDSHAKE_TIMEOUT`
 * when the TCP connection had opened, so a peer that took it and stalled the handshake is
 * told apart from one never reached (a handshake failure, counted as such by the mTLS
 * connectors, identity/outbound-connector.ts).
 */
export function socketConnector(open: () => Socket, ready: 'connect' | 'secureConnect', timeoutMs = CONNECT_TIMEOUT_MS): SessionConnector {
  return (callback) => {
    const socket = open();
    let settled = false;
    const settle = (err: Error | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.off('error', settle);
      if (err !== null) socket.destroy();
      callback(err, err === null ? socket : null);
    };
    const timer = setTimeout(() => settle(connectTimeout(socket, timeoutMs)), timeoutMs);
    socket.once('error', settle);
    socket.once(ready, () => settle(null));
  };
}

function connectTimeout(socket: Socket, timeoutMs: number): Error {
  // A transport still connecting never reached the endpoint; one past that is stuck in its TLS handshake.
  if (socket.connecting) return codedError('UND_ERR_CONNECT_TIMEOUT', `connecting took longer than ${timeoutMs} ms`);
  return handshakeTimedOut(timeoutMs);
}
