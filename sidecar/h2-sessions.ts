/**
 * Ending the HTTP/2 sessions a listener serves: gracefully (a drain), for idleness, and for
 * abuse. node's own session timeout counts frames, not streams, so it would cut a quiet long
 * stream (a gRPC watch); the idle limit here counts only the time with no stream open, as
 * the HTTP/1.1 keep-alive timeout counts the time between requests (Envoy's `idle_timeout`,
 * 1 h by default there; the HTTP/1.1 keep-alive limit here: sidecar/listeners.ts).
 *
 * Streams reset in bulk ("rapid reset", CVE-2023-44487): node's nghttp2 ends a session whose
 * client sends RST_STREAM past a burst of 1000 (then 33 a second), but counts only resets the
 * client sends. A client can make the server reset them instead ("MadeYouReset",
 * CVE-2025-8671: a body longer than its content-length, say), which nghttp2 does not count;
 * so, as Envoy's premature-reset check does, a session most of whose streams (past the first
 * PREMATURE_MIN) ended reset before any answer is ended with GOAWAY ENHANCE_YOUR_CALM.
 */
import { constants, type Http2Session, type ServerHttp2Stream } from 'node:http2';

/** The largest HTTP/2 stream id: a GOAWAY naming it refuses nothing. */
const MAX_STREAM_ID = 2 ** 31 - 1;
/** How long the PING between the two GOAWAYs may go unanswered before the second goes anyway. */
const GOAWAY_PING_WAIT_MS = 2_000;

/**
 * Tells an HTTP/2 client to open no new streams while its open ones finish (a drain), as
 * RFC 9113 §6.8 describes: a GOAWAY naming the largest stream id first, then, once a PING has
 * come back (the client has read that GOAWAY by then, so it sends nothing new), node's own
 * with the last stream really taken; the session closes when its streams are done. A
 * one-step GOAWAY refuses the streams already on their way, and a gRPC call's streamed body
 * cannot always be sent again: with it, a peer's drain under load failed 5 calls in every run
 * of test/sidecar/grpc-goaway.test.ts. A client that never answers the PING gets the second
 * GOAWAY after GOAWAY_PING_WAIT_MS, else its session would stay open for the rest of the drain.
 */
export function goAwayGracefully(session: Http2Session): void {
  if (session.closed || session.destroyed) return;
  session.goaway(constants.NGHTTP2_NO_ERROR, MAX_STREAM_ID);
  // Whichever comes first, the PING's answer or the wait's end, sends the real GOAWAY.
  const close = (): void => {
    clearTimeout(fallback);
    session.close();
  };
  const fallback = setTimeout(close, GOAWAY_PING_WAIT_MS);
  fallback.unref();
  // Too many PINGs unanswered (a client that ignores them): the real GOAWAY goes at once.
  if (!session.ping(close)) close();
}

const LIMIT = Symbol('skein.h2limit');
type Watched = { [LIMIT]?: SessionLimit };

/** Premature resets are judged once a session has closed this many streams (Envoy's default). */
const PREMATURE_MIN = 500;

/**
 * Watches `session` for idleness (GOAWAY once it has had no stream open for `idleMs`) and for
 * premature resets (see above). One timer per session and, per stream, a counter and one
 * 'close' listener (module functions: no closure per stream on the request path).
 */
export function limitSession(session: Http2Session, idleMs: number): void {
  const limit = new SessionLimit(session, idleMs);
  (session as Watched)[LIMIT] = limit;
  session.on('stream', onStream);
  session.on('close', onSessionClose);
}

class SessionLimit {
  private open = 0;
  private idleSince = performance.now();
  private timer: NodeJS.Timeout;
  private closedStreams = 0;
  private premature = 0;

  constructor(
    private readonly session: Http2Session,
    private readonly idleMs: number,
  ) {
    this.timer = setTimeout(onIdleTimer, idleMs, this);
    this.timer.unref();
  }

  opened(): void {
    this.open++;
  }

  /** A stream closed; `premature`: reset, by either side, before any answer went out. */
  closed(premature: boolean): void {
    if (--this.open === 0) this.idleSince = performance.now();
    this.closedStreams++;
    if (premature) this.premature++;
    if (this.closedStreams >= PREMATURE_MIN && this.premature * 2 > this.closedStreams && !this.session.closed) {
      // Told first, then cut: a destroy right away can close the socket before its GOAWAY is written.
      this.session.goaway(constants.NGHTTP2_ENHANCE_YOUR_CALM);
      this.session.close();
      setImmediate(destroySession, this.session);
    }
  }

  /**
   * The timer went off: when idle long enough, one GOAWAY with the last stream taken, so a
   * stream crossing it is refused at once and the client retries it elsewhere (node, having
   * sent a GOAWAY, reads nothing more on a session with no stream open: a two-step GOAWAY's
   * PING would go unanswered, and a crossing stream wait for the fallback); else a new timer
   * for the rest.
   */
  check(): void {
    if (this.session.closed || this.session.destroyed) return;
    const idle = this.open === 0 ? performance.now() - this.idleSince : 0;
    if (idle >= this.idleMs) return this.session.close();
    this.timer = setTimeout(onIdleTimer, this.idleMs - idle, this);
    this.timer.unref();
  }

  stop(): void {
    clearTimeout(this.timer);
  }
}

function destroySession(session: Http2Session): void {
  session.destroy();
}

function onIdleTimer(limit: SessionLimit): void {
  limit.check();
}

function onSessionClose(this: Http2Session): void {
  (this as Watched)[LIMIT]!.stop();
}

function onStream(this: Http2Session, stream: ServerHttp2Stream): void {
  const limit = (this as Watched)[LIMIT]!;
  limit.opened();
  (stream as Watched)[LIMIT] = limit;
  stream.on('close', onStreamClose);
}

function onStreamClose(this: ServerHttp2Stream): void {
  (this as Watched)[LIMIT]!.closed(!this.headersSent && this.rstCode !== constants.NGHTTP2_NO_ERROR);
}
