/**
 * Ending the HTTP/2 sessions a listener serves: gracefully (a drain, or a session left idle),
 * and the idle limit itself. node's own session timeout counts frames, not streams, so it
 * would cut a quiet long stream (a gRPC watch); the limit here counts only the time with no
 * stream open, as the HTTP/1.1 keep-alive timeout counts the time between requests (Envoy's
 * `idle_timeout`, 1 h by default there; the HTTP/1.1 keep-alive limit here: sidecar/listeners.ts).
 *
 * A client resetting streams in bulk ("rapid reset", CVE-2023-44487) is not judged here:
 * node's nghttp2 already ends such a session (a burst of 1000 resets, then 33 a second) with
 * GOAWAY, and test/sidecar/h2-connection-limits.test.ts holds that through the sidecar.
 */
import { constants, type Http2Session, type ServerHttp2Stream } from 'node:http2';

/** The largest HTTP/2 stream id: a GOAWAY naming it refuses nothing. */
const MAX_STREAM_ID = 2 ** 31 - 1;
/** How long the PING between the two GOAWAYs may go unanswered before the second goes anyway. */
const GOAWAY_PING_WAIT_MS = 2_000;

/**
 * Tells an HTTP/2 client to open no new streams without refusing those already on their way
 * (RFC 9113 §6.8): a GOAWAY naming the largest stream id first, then, once a PING has come
 * back (the client has read that GOAWAY by then, so it sends nothing new), node's own with the
 * last stream really taken; the session closes when its streams are done. A one-step GOAWAY
 * refuses streams in flight, and a gRPC call's streamed body cannot always be sent again. A
 * client that never answers the PING gets the second GOAWAY after GOAWAY_PING_WAIT_MS, else
 * its session would stay open for the rest of the drain.
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

const IDLE = Symbol('skein.h2idle');
type Watched = { [IDLE]?: IdleLimit };

/**
 * Sends `session` GOAWAY once it has had no stream open for `idleMs`. One timer per session
 * and, per stream, a counter and one 'close' listener (module functions: no closure per
 * stream on the request path).
 */
export function limitIdleTime(session: Http2Session, idleMs: number): void {
  const limit = new IdleLimit(session, idleMs);
  (session as Watched)[IDLE] = limit;
  session.on('stream', onStream);
  session.on('close', onSessionClose);
}

class IdleLimit {
  private open = 0;
  private idleSince = performance.now();
  private timer: NodeJS.Timeout;

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

  closed(): void {
    if (--this.open === 0) this.idleSince = performance.now();
  }

  /** The timer went off: GOAWAY when idle long enough, else a new timer for the rest. */
  check(): void {
    if (this.session.closed || this.session.destroyed) return;
    const idle = this.open === 0 ? performance.now() - this.idleSince : 0;
    if (idle >= this.idleMs) return goAwayGracefully(this.session);
    this.timer = setTimeout(onIdleTimer, this.idleMs - idle, this);
    this.timer.unref();
  }

  stop(): void {
    clearTimeout(this.timer);
  }
}

function onIdleTimer(limit: IdleLimit): void {
  limit.check();
}

function onSessionClose(this: Http2Session): void {
  (this as Watched)[IDLE]!.stop();
}

function onStream(this: Http2Session, stream: ServerHttp2Stream): void {
  const limit = (this as Watched)[IDLE]!;
  limit.opened();
  (stream as Watched)[IDLE] = limit;
  stream.on('close', onStreamClose);
}

function onStreamClose(this: ServerHttp2Stream): void {
  (this as Watched)[IDLE]!.closed();
}
