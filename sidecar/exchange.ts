/**
 * The request context: one Exchange per request, carrying what the stages decided (target,
 * route, subset, trace ids) and running the attempt loop, which is the resilience stage:
 * pick an endpoint (balance), pass the circuit breaker, dispatch (upstream), and on failure
 * decide with the retry policy, budget and idempotency rule whether to try again after a
 * backoff, within the per-try and overall timeouts. Outcomes go to the breaker, the outlier
 * detector and the edge's metrics (telemetry).
 *
 * Hot-path rules: fields are all declared up front (one hidden class); stages that are off
 * are `null` and cost a comparison; there are no closures per request (timers and socket
 * events get module-level functions and find the exchange through `this`); nothing logs.
 */
import type { EventEmitter } from 'node:events';
import { constants as h2constants, type ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { ownEntry } from '../common/config/own.js';
import { CallerFaultError, isSkeinError, REASONS, type Reason } from '../common/errors.js';
import { H1_MALFORMED } from './http1/client.js';
import { BodyNotReadError, BodyTooLargeError, ClientBodyError } from './http1/incoming.js';
import { BodyCutOffError, bodyTaken, sentThenRest, watchBody } from './cluster/request-body.js';
import type { SubsetFailover } from './cluster/failover.js';
import { admitTry, latestSubset, refusalText, type RouteRuntime, type ServiceRuntime, type SubsetRuntime } from './cluster/service-runtime.js';
import type { UpstreamEndpoint } from './cluster/upstream-endpoint.js';
import { codedError, type CallControl } from './cluster/upstream-dispatcher.js';
import type { InFlightRequest, Lifecycle } from './lifecycle.js';
import { HEAD_LIMIT_MS } from './listeners.js';
import { backoffDelay } from '../common/backoff.js';
import { Admission, type Verdict } from './resilience/breaker.js';
import type { OutlierDetector } from './resilience/outlier.js';
import type { RetryBudget } from './resilience/retry-budget.js';
import { RETRY_AFTER_MAX_MS, retryAfterMs } from './resilience/retry-after.js';
import { isRetryableMethod, retryReason, type AttemptOutcome } from './resilience/retry-decision.js';
import { classify, connectionListed, H, headerText, removeHeaders, responseHeaders, type RawHeaders } from './stages/headers.js';
import { h2Stream, sidecarReply, socketReply } from './stages/reply.js';
import { AttemptHandler, connectFailureText, dispatchFailure, isConnectError, isTimeoutError, rawHeader, type AttemptOwner } from './stages/upstream.js';
import { ATTEMPT_VALUE, type RetryEvent } from './telemetry/hop.js';
import type { EdgeMetrics, SidecarMetrics } from './telemetry/metrics.js';
import type { HopRecorder } from './telemetry/reporter.js';
import { appendHopTraceHeaders, continueTrace, requestIdFor, type IdSource, type IncomingTraceHeaders, type TraceFields } from './telemetry/trace-context.js';
import { GRPC_UNKNOWN, grpcStatusCode, grpcStatusOfHttp } from './telemetry/grpc-status.js';

/** A failover target's endpoint for a try, with what the request takes from it (Exchange.failOver). */
interface FailoverPick {
  readonly label: string;
  readonly runtime: ServiceRuntime;
  readonly to: SubsetRuntime;
  readonly endpoint: UpstreamEndpoint;
}

/** Request bodies up to this size are buffered when the route may retry, so they can be replayed. */
export const REPLAY_BUFFER_LIMIT = 64 * 1024;

/**
 * A request as the stages read it: from Skein's HTTP/1.1 server or a peer's mux stream
 * (sidecar/http1/incoming.ts), or node:http2's compatibility request (gRPC callers).
 */
export interface ProxyRequest extends Readable {
  exchange: Exchange | null;
  readonly method?: string;
  readonly url?: string;
  readonly httpVersionMajor: number;
  readonly rawHeaders: string[];
  readonly headers: Record<string, string | string[] | undefined>;
  readonly socket: Socket;
  /** The whole body has come in, read or not (Skein's HTTP/1.1 and mux requests, which emit 'received' then). */
  readonly received?: boolean;
}

/**
 * A response as the stages write it: Skein's HTTP/1.1 server's (sidecar/http1/server.ts), a
 * mux stream's (sidecar/mux/server.ts), or node:http2's compatibility response. Emits
 * 'close' once, after it ended or when the caller went away, and 'drain' after a write
 * returned false.
 */
export interface ProxyResponse extends EventEmitter {
  exchange: Exchange | null;
  /** Set by stages/reply.ts on an answer this sidecar makes itself (a mux stream says so to its caller). */
  sidecarMade?: boolean;
  readonly headersSent: boolean;
  /** Set false while draining: the caller takes no new requests here (HTTP/1.1 `Connection: close`, a mux GOAWAY). */
  shouldKeepAlive: boolean;
  /**
   * The request's body will not be read to its end (ClientBodyError): Skein's HTTP/1.1
   * response closes its connection after the answer, since the rest of the body stands
   * between it and the next request. Absent where the transport frames each request apart:
   * a mux stream's end drops the rest of its body and the caller stops sending it, and an
   * HTTP/2 stream is reset (stopH2Body), so their connections keep serving other requests.
   */
  refuseBody?(): void;
  /**
   * Takes back a written head that nothing of has reached the caller yet (Skein's HTTP/1.1
   * response holds it until the first body bytes, to send both in one write), so that a
   * sidecar-made answer can take its place; false once anything went out. Absent where a
   * written head is on its way at once: a mux stream frames it, node:http2 sends HEADERS.
   */
  retractHead?(): boolean;
  writeHead(status: number, reasonOrHeaders?: string | readonly string[] | Record<string, string>, headers?: readonly string[] | Record<string, string>): unknown;
  write(chunk: Buffer | string): boolean;
  end(chunk?: Buffer | string): unknown;
  addTrailers(trailers: Record<string, string>): void;
  destroy(err?: Error): unknown;
}

/** What every exchange of one listener shares. */
export interface ExchangeDeps {
  readonly direction: 'inbound' | 'outbound';
  /** This sidecar's name in the Proxy-Status entries of its own answers (stages/reply.ts proxyName). */
  readonly proxyName: string;
  /**
   * The next hop is a peer Skein sidecar (outbound over mTLS): it re-derives every trace
   * format from `traceparent` for its app, so only that one is sent (and B3's debug flag).
   */
  readonly peerIsSidecar: boolean;
  readonly ids: IdSource;
  readonly lifecycle: Lifecycle;
  readonly metrics: SidecarMetrics;
  readonly random: () => number;
  /** Spans and tap (sidecar/telemetry/reporter.ts); null when nothing is exported. */
  readonly recorder: HopRecorder | null;
  /** `--max-request-body`; 0 for no limit. */
  readonly maxBodyBytes: number;
  /** `--max-request-headers`, for HTTP/2 heads (the pipeline's h2HeadAccepted); the listeners hold the others to it. */
  readonly maxHeaderBytes: number;
}

function onResponseClose(this: ProxyResponse): void {
  const ex = this.exchange;
  if (ex === null) return;
  ex.deps.lifecycle.requestEnded(ex);
  if (!ex.finished) ex.onClientGone();
}

function onResponseDrain(this: ProxyResponse): void {
  this.exchange?.answering?.resume();
}

/**
 * Node's timers hold at most 2^31-1 ms and fire a longer delay after 1 ms: a deadline past it
 * (a caller's `grpc-timeout: 720H` is legal) is waited for in steps of this (onTimer re-arms).
 */
const TIMER_MAX_MS = 2 ** 31 - 1;

function armAt(ex: Exchange, delay: number): NodeJS.Timeout {
  return setTimeout(onTimer, delay > TIMER_MAX_MS ? TIMER_MAX_MS : Math.max(1, delay), ex);
}

function onTimer(ex: Exchange): void {
  ex.timer = undefined;
  ex.onTimer();
}

/** A peer sidecar's own answer that says its app never had the request. */
function neverReachedApp(reason: string | undefined, status: number): boolean {
  return status === 429 ? reason === 'rate-limited' : reason === 'upstream-connect-failure';
}

function onBackoffDone(ex: Exchange): void {
  ex.backoffTimer = undefined;
  ex.countRetry();
  ex.followReload();
  ex.send();
}

function onRequestData(this: ProxyRequest, chunk: Buffer): void {
  const ex = this.exchange;
  if (ex === null || ex.bodyChunks === null) return;
  ex.bodyChunks.push(chunk);
  // HTTP/2 bodies have no content-length to check up front; the caps apply as they arrive.
  if (!ex.h2) return;
  ex.bodyAt = performance.now();
  ex.bodyBytes += chunk.length;
  const limit = ex.deps.maxBodyBytes;
  if (limit > 0 && ex.bodyBytes > limit) ex.bodyTooLarge(limit);
  else if (ex.bodyBytes > REPLAY_BUFFER_LIMIT) ex.streamBufferedBody();
}

/** The request body failed (sidecar/http1/server.ts: malformed, stalled, past the limit, unread). */
function onRequestError(this: ProxyRequest, err: Error): void {
  this.exchange?.requestBodyFailed(err);
}

/** A streamed request body has come in whole ('received'; an HTTP/2 body's 'end'). */
function onRequestReceived(this: ProxyRequest): void {
  this.exchange?.bodyReceived();
}

function onRequestEnd(this: ProxyRequest): void {
  const ex = this.exchange;
  if (ex === null || ex.bodyChunks === null || ex.finished) return;
  const body = ex.bodyChunks.length === 1 ? ex.bodyChunks[0]! : Buffer.concat(ex.bodyChunks);
  ex.body = body;
  ex.bodyChunks = null;
  ex.bodyReceived();
  const mirror = ex.route!.mirror;
  if (mirror !== null) mirror(ex.method, ex.url, ex.headers, body, ex.hash);
  ex.send();
}

export class Exchange implements AttemptOwner, IncomingTraceHeaders, TraceFields, InFlightRequest {
  readonly startedAt = performance.now();
  /** Lifecycle's list of the requests in flight. */
  inFlightPrev: InFlightRequest | null = null;
  inFlightNext: InFlightRequest | null = null;
  method: string;
  /** The target sent upstream (origin-form). */
  url: string;
  /** The authority the client named (Host, or the absolute-form target's). */
  authority = '';
  grpc = false;
  /**
   * A gRPC-Web call's content-type (`application/grpc-web…`), undefined for any other: its
   * status travels in its answer's body, never in HTTP trailers, and the sidecar's own answers
   * carry this type (its clients refuse `application/grpc`).
   */
  grpcWebType: string | undefined = undefined;
  /** The request came over HTTP/2 (gRPC): headers go out as objects, trailers matter. */
  readonly h2: boolean;
  /** grpc-status of the answer (from headers or trailers, as grpcStatusCode reads it), -1 when none. */
  grpcStatus = -1;
  /** gRPC status headers of the answer's head (a trailers-only answer), for its outcome, or sent as trailers when not relayed as one. */
  private pendingTrailers: Record<string, string> | null = null;
  /** Outgoing request headers, flat `[name, value, ...]`. */
  readonly headers: string[] = [];
  private attemptSlot = -1;
  /** The caller's `x-skein-attempt`: an inbound hop hands the app the try number of the sidecar that sent it, and its span records it. */
  callerAttempt: string | undefined = undefined;
  /** Index of the grpc-timeout value in `headers`, rewritten per attempt to the time left; -1 when absent. */
  private grpcTimeoutSlot = -1;
  contentLength = -1;
  chunked = false;
  /** The Upgrade header's value ('' when absent); upgrades take the splice path. */
  upgrade = '';

  traceparent: string | undefined = undefined;
  tracestate: string | undefined = undefined;
  b3: string | undefined = undefined;
  xB3TraceId: string | undefined = undefined;
  xB3SpanId: string | undefined = undefined;
  xB3Sampled: string | undefined = undefined;
  xB3Flags: string | undefined = undefined;
  requestId: string | undefined = undefined;
  traceId = '';
  spanId = '';
  parentSpanId = '';
  sampled = true;
  debug = false;

  destination = '';
  route: RouteRuntime | null = null;
  subset: SubsetRuntime | null = null;
  edge: EdgeMetrics | null = null;
  outlier: OutlierDetector | null = null;
  budget: RetryBudget | null = null;

  body: Buffer | ProxyRequest | Readable | null = null;
  bodyChunks: Buffer[] | null = null;
  /** Bytes in `bodyChunks`, counted for HTTP/2 bodies only. */
  bodyBytes = 0;
  /** Response headers of an opted-in gRPC call, held until its first message or its trailers. */
  heldHead: string[] | null = null;
  /** The body is none or a buffered copy; a streamed one can be sent again only while no attempt has begun to read it (mayRetry). */
  replayable = true;
  attempts = 0;
  /** A try so far may have reached the app: an answer must not then say none did (REASONS' `delivered`). */
  mayHaveDelivered = false;
  /** Retries decided, for the hop's span; only kept when a recorder is on. */
  retries: RetryEvent[] | null = null;
  /** The `x-skein-reason` of the answer this sidecar made itself (reply), for the hop's span; undefined for a relayed answer. */
  reason: Reason | undefined = undefined;
  /** What that answer says (its body, its Proxy-Status details), for the access log. */
  reasonDetail: string | undefined = undefined;
  /** Bytes of the upstream's answer body passed on, for the access log. */
  responseBytes = 0;
  /** The status of the latest answer given up for a retry: an answer the sidecar makes after it says so (Proxy-Status `received-status`). */
  private receivedStatus: number | undefined = undefined;
  current: AttemptHandler | null = null;
  /** The request went to a failover target (failOver): its retries stay there, and the target's own failover is not applied. */
  failedOver = false;
  /** The endpoint of the latest attempt: a retry goes elsewhere when another is healthy. */
  lastEndpoint: AttemptHandler['endpoint'] | undefined = undefined;
  /** The request's hash key for a `ring-hash` destination (every try of it picks by the same key); undefined for none. */
  hash: number | undefined = undefined;
  /** Absolute deadline (performance.now() ms) of the whole request; Infinity for none. */
  deadlineAt = Infinity;
  /** The request body is still coming in: the route's and the per-try timeouts wait for its end (bodyReceived). */
  bodyPending = false;
  /** forward() has run: the request body, if any, is taken (streamed, buffered, or known absent). */
  private forwarded = false;
  /** performance.now() when an HTTP/2 request body last moved (a chunk in, or out to a call): its stall check. */
  bodyAt = 0;
  /**
   * One timer per request, armed for whichever comes first: this attempt's per-try timeout or
   * the deadline; while an HTTP/2 body with no deadline comes in, its stall check (checkBodyStall);
   * before the request goes on, its route's fault delay (handleOutbound).
   */
  timer: NodeJS.Timeout | undefined = undefined;
  private timerIsPerTry = false;
  backoffTimer: NodeJS.Timeout | undefined = undefined;
  /** The wait before the retry mayRetry granted last, drawn when it decided (it must end before the deadline). */
  private backoffMs = 0;
  /** The try whose retry the budget refused last (skein_retry_budget_exhausted_total counts it once); 0 for none. */
  private budgetRefusedTry = 0;
  /** The reason of the retry mayRetry granted last: counted when its backoff ends and it goes out (countRetry), not before. */
  private retryReasonPending: ReturnType<typeof retryReason> = undefined;
  /** The call whose answer is being relayed: resumed when the caller's side drains. */
  answering: CallControl | null = null;
  status = 0;
  /** Response bytes the upstream announced (content-length), -1 when unknown. */
  private remaining = -1;
  private bodyStarted = false;
  private ended = false;
  headSent = false;
  /** Set for upgrade requests: sidecar-made answers go to this raw socket. */
  upgradeSocket: Socket | null = null;
  /** Set by an upgrade's splice (stages/upgrade.ts), which owns the client socket: answers `503 retries-exhausted` with the text given at the drain's end, false once the endpoint's answer began. */
  cutUpgrade: ((detail: string) => boolean) | null = null;
  finished = false;
  clientGone = false;

  constructor(
    readonly deps: ExchangeDeps,
    readonly req: ProxyRequest,
    readonly res: ProxyResponse,
  ) {
    this.method = req.method ?? 'GET';
    this.url = req.url ?? '/';
    this.h2 = req.httpVersionMajor === 2;
    req.exchange = this;
    res.exchange = this;
    deps.lifecycle.requestStarted(this);
    // 'close' fires once; `on` skips the once-wrapper allocation.
    res.on('close', onResponseClose);
    if (deps.lifecycle.draining) res.shouldKeepAlive = false;
  }

  /** Decode: copies the end-to-end request headers and reads the ones the stages need. */
  decodeHeaders(): void {
    const raw = this.req.rawHeaders;
    const out = this.headers;
    let listed: string[] | undefined;
    let cookieAt = -1;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!;
      switch (classify(name)) {
        case H.Cookie:
          // An HTTP/2 caller's crumbs are joined with "; " (RFC 9113 §8.2.3): the next hop may be
          // HTTP/1.1 (an app, a peer's mux), where a second Cookie line is one many servers never read.
          if (this.h2 && cookieAt >= 0) out[cookieAt] = `${out[cookieAt]!}; ${raw[i + 1]!}`;
          else {
            cookieAt = out.length + 1;
            out.push(name, raw[i + 1]!);
          }
          break;
        case H.Pass:
          out.push(name, raw[i + 1]!);
          if (this.authority === '' && name.length === 4 && name.toLowerCase() === 'host') this.authority = raw[i + 1]!;
          break;
        case H.ContentType: {
          const value = raw[i + 1]!;
          if (value.startsWith('application/grpc')) {
            this.grpc = true;
            if (value.startsWith('application/grpc-web')) this.grpcWebType = value;
          }
          out.push(name, value);
          break;
        }
        case H.ContentLength:
          this.contentLength = Number(raw[i + 1]);
          out.push(name, raw[i + 1]!);
          break;
        case H.TransferEncoding:
          this.chunked = true;
          break;
        case H.Te:
          // gRPC needs `te: trailers` end to end; other TE values are hop-by-hop.
          if (raw[i + 1]!.toLowerCase() === 'trailers') out.push(name, 'trailers');
          break;
        case H.Connection:
          listed = connectionListed(raw[i + 1]!);
          break;
        case H.Upgrade:
          this.upgrade = raw[i + 1]!;
          break;
        case H.Traceparent:
          // A second one makes neither the caller's: '' is no traceparent, so a new trace starts (W3C).
          this.traceparent = this.traceparent === undefined ? raw[i + 1] : '';
          break;
        case H.Tracestate:
          // Several lines are one list, combined as HTTP fields are (W3C trace-context §3.3.1).
          this.tracestate = this.tracestate === undefined ? raw[i + 1] : `${this.tracestate},${raw[i + 1]!}`;
          break;
        case H.B3:
          this.b3 = raw[i + 1];
          break;
        case H.XB3TraceId:
          this.xB3TraceId = raw[i + 1];
          break;
        case H.XB3SpanId:
          this.xB3SpanId = raw[i + 1];
          break;
        case H.XB3Sampled:
          this.xB3Sampled = raw[i + 1];
          break;
        case H.XB3Flags:
          this.xB3Flags = raw[i + 1];
          break;
        case H.RequestId:
          // One request, one id: the first line's, and one line goes on (stampHeaders).
          this.requestId ??= raw[i + 1];
          break;
        case H.SkeinReason:
          out.push(name, raw[i + 1]!);
          break;
        case H.Attempt:
          this.callerAttempt = raw[i + 1]!;
          break;
        case H.Authority:
          // HTTP/2's Host; the next hop gets it as Host (undici turns that into :authority for h2).
          this.authority = raw[i + 1]!;
          out.push('host', this.authority);
          break;
        default:
          break;
      }
    }
    if (listed !== undefined) removeHeaders(out, listed);
  }

  /**
   * Adds this hop's request id, attempt and trace headers; the trace ones last, from
   * `traceparent` on, so a retry with a span of its own can write them again (retrace).
   */
  stampHeaders(): void {
    continueTrace(this, this, this.deps.ids);
    const out = this.headers;
    // Kept as sent: the access log names the id the upstream got, a generated one too.
    this.requestId = requestIdFor(this.requestId, this.deps.ids);
    out.push('x-request-id', this.requestId, 'x-skein-attempt', this.firstAttempt());
    this.attemptSlot = out.length - 1;
    appendHopTraceHeaders(out, this, this.deps.peerIsSidecar);
  }

  /** Writes the trace headers again for a retry with a span of its own (`spanId`, a child of the hop's), which its upstream takes as the parent. */
  private retrace(spanId: string): void {
    const out = this.headers;
    out.length = out.lastIndexOf('traceparent');
    appendHopTraceHeaders(out, { traceId: this.traceId, spanId, parentSpanId: this.spanId, sampled: this.sampled, debug: this.debug, tracestate: this.tracestate }, this.deps.peerIsSidecar);
  }

  /**
   * The try number of this hop's first attempt. Inbound, it is the calling sidecar's (the app
   * should see that its request is a retry); outbound, the app's own header means nothing to
   * the next service and is dropped.
   */
  private firstAttempt(): string {
    const caller = this.callerAttempt;
    return this.deps.direction === 'inbound' && caller !== undefined && ATTEMPT_VALUE.test(caller) ? caller : '1';
  }

  /** Sends the request to `subset` under `route`'s policies (balance → resilience → upstream). */
  forward(route: RouteRuntime, subset: SubsetRuntime, outlier: OutlierDetector | null, budget: RetryBudget | null): void {
    this.forwarded = true;
    this.route = route;
    this.subset = subset;
    if (this.edge === null) this.edge = subset.edge;
    this.outlier = outlier;
    this.budget = budget;
    this.stampHeaders();
    // The route's timeout counts from here, after a fault delay (Envoy's router timeout starts
    // after its fault filter too): an injected delay is the sidecar's, never the endpoint's.
    if (route.timeoutMs > 0) this.deadlineAt = performance.now() + route.timeoutMs;
    if (this.grpc && !this.readGrpcTimeout()) return;
    // Every request to the destination, on a rule that retries or not: the budget is the
    // destination's (as Linkerd's is the service's), a share of all of its traffic.
    if (budget !== null) budget.recordRequest();
    const hasBody = this.h2 ? h2HasBody(this.req) : this.chunked || this.contentLength > 0;
    if (!hasBody) {
      if (route.mirror !== null) route.mirror(this.method, this.url, this.headers, undefined, this.hash);
      this.send();
      return;
    }
    // A body that already failed (during a fault delay) is answered now; one that fails later, when it does.
    const failed = this.req.errored;
    if (failed !== null && this.requestBodyFailed(failed)) return;
    this.req.on('error', onRequestError);
    // The route's and the per-try timeouts count from the end of the request body, as Envoy's
    // do: a slow client is no slow endpoint. A gRPC call's own deadline runs from its start.
    this.bodyPending = true;
    if (this.grpcTimeoutSlot < 0) {
      this.deadlineAt = Infinity;
      // HTTP/1.1 bodies are bounded by their connection's sweep; an HTTP/2 one by this check (a gRPC call's by its deadline).
      if (this.h2) this.watchStall();
    }
    // gRPC calls over HTTP/2 are copied for replay only where the route opts in: mark unary
    // methods only, since the call reaches the app once the client ends its stream (or 64 KiB
    // have come). Any other body is, when the route may retry or mirror it and it declares a
    // length up to REPLAY_BUFFER_LIMIT, whichever protocol the caller speaks.
    const buffer =
      this.h2 && this.grpc
        ? route.retry !== null && route.retryNonIdempotent
        : (route.retry !== null || route.mirror !== null) && !this.chunked && this.contentLength >= 0 && this.contentLength <= REPLAY_BUFFER_LIMIT;
    if (buffer) {
      this.bodyChunks = [];
      this.req.on('data', onRequestData);
      this.req.on('end', onRequestEnd);
      if (this.deadlineAt !== Infinity) this.armTimer();
      return;
    }
    this.streamBody(this.req);
    this.replayable = false;
    if (this.req.received === true) this.bodyReceived();
    else this.req.on(this.h2 ? 'end' : 'received', onRequestReceived);
    if (route.mirror !== null) route.mirror(this.method, this.url, this.headers, null);
    this.send();
  }

  /**
   * The whole request body has come in: the route's timeout starts now (a gRPC call's
   * deadline ran from its start), and so does the per-try timeout of the attempt in flight.
   */
  bodyReceived(): void {
    if (!this.bodyPending) return;
    this.bodyPending = false;
    if (this.finished) return;
    if (this.h2 && this.grpcTimeoutSlot < 0 && this.timer !== undefined) {
      // The stall check is done.
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const timeout = this.route!.timeoutMs;
    if (timeout > 0 && this.grpcTimeoutSlot < 0) this.deadlineAt = performance.now() + timeout;
    if (this.current !== null) this.armTimer();
    // A retry's backoff (after a try that never got to read the body) is bounded by the deadline too.
    else if (this.backoffTimer !== undefined) this.armDeadline();
  }

  /** An HTTP/2 body outgrew the replay buffer: what came so far, then the rest as it arrives, never replayed. */
  streamBufferedBody(): void {
    const chunks = this.bodyChunks!;
    this.bodyChunks = null;
    this.req.pause();
    this.req.off('data', onRequestData);
    this.req.off('end', onRequestEnd);
    this.req.on('end', onRequestReceived);
    this.streamBody(sentThenRest(chunks, this.req));
    this.replayable = false;
    if (this.route!.mirror !== null) this.route!.mirror(this.method, this.url, this.headers, null);
    this.send();
  }

  /** One attempt: balance, breaker, dispatch. */
  send(): void {
    if (this.finished) return;
    // One clock read per attempt, for the check, the grpc-timeout sent and the timer.
    const now = performance.now();
    if (now >= this.deadlineAt) {
      // A backoff that ended with the deadline (its timer a little late) is the request's timeout;
      // before any try, a caller's gRPC deadline that passed during a fault delay: nothing goes
      // out, so no endpoint is blamed for a timeout it never had a chance to meet.
      if (this.attempts > 0) this.onDeadline();
      else this.reply('timeout', `the call's deadline passed before it was sent to ${this.destination}`);
      return;
    }
    let subset = this.subset!;
    let endpoint = subset.picker.pick(this.lastEndpoint, this.hash);
    if (endpoint === undefined) {
      endpoint = subset.failover === null || this.failedOver ? undefined : this.failOver(subset, subset.failover);
      if (endpoint === undefined) {
        this.replyUnsent('no-healthy-endpoints', `no endpoint for ${subset.service}${subset.name === '*' ? '' : ` subset ${subset.name}`}`);
        return;
      }
      subset = this.subset!;
    }
    const admission = admitTry(subset);
    if (admission === Admission.Refused) {
      this.replyUnsent('circuit-open', refusalText(subset));
      return;
    }
    this.attempts++;
    // Headers held from an attempt that then failed belong to no answer.
    this.heldHead = null;
    if (this.attempts > 1) this.headers[this.attemptSlot] = String(this.attempts);
    if (this.grpcTimeoutSlot >= 0) this.headers[this.grpcTimeoutSlot] = grpcTimeoutValue(this.deadlineAt - now);
    endpoint.active++;
    this.lastEndpoint = endpoint;
    const h = new AttemptHandler(this, endpoint, admission);
    if (admission === Admission.Trial) subset.breaker!.startTrial(h);
    if (this.outlier !== null && this.outlier.ejectedCount > 0) h.sentDuring = this.outlier.ejection(endpoint.key);
    this.current = h;
    this.armTimer(now);
    try {
      endpoint.pool.dispatch(
        {
          path: this.url,
          method: this.method,
          headers: this.headers,
          body: this.body,
          // Timeouts are this exchange's (undici's own timers tick at 0.5 s granularity).
          headersTimeout: 0,
          bodyTimeout: 0,
        },
        // Skein's clients take the attempt handler as it is (ControlledHandler); undici's Dispatcher type knows only its own.
        h as unknown as Dispatcher.DispatchHandler,
      );
    } catch (err) {
      // Endpoints are validated where they come in, but a pool that throws (Node's
      // ERR_SOCKET_BAD_PORT from a connect) would otherwise end the process from a retry's
      // timer: the attempt fails as a connect failure instead, retried or answered.
      h.onError(dispatchFailure(err, endpoint.key));
    }
  }

  /**
   * `subset` has no healthy endpoint: the first of its failover targets with one takes the
   * request, under its own breaker, outlier detection and metrics edge (the route's timeout,
   * retries and budget stay), and keeps it for its retries. With none, the subset's own
   * ejected endpoints are picked (panic routing, as without failover), else a target's.
   */
  private failOver(subset: SubsetRuntime, failover: SubsetFailover): UpstreamEndpoint | undefined {
    let spare: FailoverPick | undefined;
    for (const target of failover.targets) {
      const runtime = target.runtime();
      const to = runtime?.subsets.get(target.subset);
      const endpoint = to?.picker.pick(undefined, this.hash);
      if (endpoint === undefined) continue;
      const pick = { label: target.label, runtime: runtime!, to: to!, endpoint };
      if (!runtime!.outlier.isEjected(endpoint.key)) return this.moveTo(subset, pick);
      spare ??= pick;
    }
    const panic = failover.panic.pick(this.lastEndpoint, this.hash);
    return panic !== undefined || spare === undefined ? panic : this.moveTo(subset, spare);
  }

  /** The request leaves `from` for the target `pick` chose, for this try and its retries (counted once). */
  private moveTo(from: SubsetRuntime, pick: FailoverPick): UpstreamEndpoint {
    this.deps.metrics.failedOver(from.service, from.name, pick.label);
    this.failedOver = true;
    this.subset = pick.to;
    this.edge = pick.to.edge;
    this.outlier = pick.runtime.outlier;
    return pick.endpoint;
  }

  onAttemptHeaders(h: AttemptHandler, status: number, raw: RawHeaders, statusText: string): boolean {
    if (h !== this.current) return true;
    if (status < 200) return true;
    h.status = status;
    // gRPC failures come as HTTP 200 with grpc-status in the headers (trailers-only answers);
    // a 4xx is looked at only where `on` names one (a 2xx pays the one comparison it always did).
    if ((status >= 500 || this.grpc || (status >= 400 && this.route!.retry?.on.any4xx === true)) && this.route!.retry !== null && this.retryAfterResponse(h, status, raw)) {
      // A gRPC call's HTTP 200 would tell nothing of why it was retried.
      if (!this.grpc) this.receivedStatus = status;
      // As Envoy does, the try is reset at its retryable status: its body may be slow or never
      // end, and the retry waits for its backoff alone.
      this.retryNext();
      return true;
    }
    this.status = status;
    this.answering = h.control;
    if (this.clientGone) return true;
    if (h.admission === Admission.Trial && !this.grpc) this.trialAnswered(h);
    const out: string[] = [];
    this.remaining = responseHeaders(raw, out, status, this.method);
    // The rule's response header changes (null when none), on upstream answers only: the content-length read above is never one of them.
    const edit = this.route!.responseHeaders;
    if (edit !== null) edit(out);
    if (this.grpc && this.h2 && this.replayable && this.route!.retryNonIdempotent && this.route!.retry !== null && rawHeader(raw, 'grpc-status') === undefined) {
      // A peer sidecar sends even a trailers-only failure as headers, then trailers: hold the
      // headers until a message shows the call succeeded, so an UNAVAILABLE can still be retried.
      this.heldHead = out;
      return true;
    }
    if (this.h2) this.writeHeadH2(status, out);
    else {
      // A trailers-only gRPC answer relayed to a peer sidecar (the mux) carries its status here.
      if (this.grpc) {
        const grpcStatus = rawHeader(raw, 'grpc-status');
        this.grpcStatus = grpcStatus === undefined ? -1 : grpcStatusCode(grpcStatus);
      }
      if (statusText) this.res.writeHead(status, statusText, out);
      else this.res.writeHead(status, out);
    }
    this.headSent = true;
    return true;
  }

  /**
   * The answer's head was written, but it can still be taken back when none of it has reached
   * the caller (sidecar/http1/server.ts holds it until the first body bytes): then the caller
   * gets a sidecar-made answer rather than an empty cut. False when something went out.
   */
  private retractHead(): boolean {
    const res = this.res;
    if (res.retractHead === undefined || !res.retractHead()) return false;
    this.headSent = false;
    this.bodyStarted = false;
    this.remaining = -1;
    this.answering = null;
    this.grpcStatus = -1;
    return true;
  }

  private releaseHead(): void {
    this.writeHeadH2(this.status, this.heldHead!);
    this.heldHead = null;
    this.headSent = true;
  }

  /** HTTP/2 callers get headers as an object; a trailers-only gRPC answer stays one (its status also kept for the outcome). */
  private writeHeadH2(status: number, flat: string[]): void {
    const headers: Record<string, string | string[]> = {};
    for (let i = 0; i < flat.length; i += 2) {
      const name = flat[i]!.toLowerCase();
      // HTTP/2 has no transfer codings (RFC 9113 §8.2.2), and node refuses the header: the coded body goes on without it, as it always did.
      if (name === 'transfer-encoding') continue;
      if (this.grpc && (name === 'grpc-status' || name === 'grpc-message' || name === 'grpc-status-details-bin')) {
        (this.pendingTrailers ??= {})[name] = flat[i + 1]!;
        if (name === 'grpc-status') this.grpcStatus = grpcStatusCode(flat[i + 1]);
        continue;
      }
      const prev = ownEntry(headers, name);
      headers[name] = prev === undefined ? flat[i + 1]! : repeatedField(name, prev, flat[i + 1]!);
    }
    this.remaining = -1;
    const stream = this.pendingTrailers !== null ? h2Stream(this.res) : undefined;
    if (stream !== undefined && this.pendingTrailers!['grpc-status'] !== undefined) {
      // A trailers-only answer (grpc-status in its head, no body) goes on as one: gRPC reads the
      // status and the call's metadata (the app's, a peer's x-skein-reason) from that frame.
      if (!stream.headersSent && !stream.destroyed) stream.respond({ ':status': status, ...headers, ...this.pendingTrailers }, { endStream: true });
      this.ended = true;
      return;
    }
    this.res.writeHead(status, headers as never);
  }

  onAttemptData(h: AttemptHandler, chunk: Buffer): boolean {
    if (h !== this.current || this.clientGone) return true;
    if (h.admission === Admission.Trial) this.trialAnswered(h);
    if (this.heldHead !== null) this.releaseHead();
    this.responseBytes += chunk.length;
    // A body that fits one chunk ends the response with a single write (headers + body).
    if (!this.bodyStarted && this.remaining === chunk.length) {
      this.ended = true;
      this.res.end(chunk);
      return true;
    }
    this.bodyStarted = true;
    // A slow caller pauses the upstream (HTTP/2 ones too: their flow control then reaches the app).
    if (this.res.write(chunk)) return true;
    this.res.once('drain', onResponseDrain);
    return false;
  }

  onAttemptComplete(h: AttemptHandler, trailers: RawHeaders | Record<string, string | string[]> | null): void {
    // A gRPC answer ends with its status, in trailers or a trailers-only head: one in an HTTP 200
    // that ended with neither was cut short, whatever its stream's last frame was (an END_STREAM
    // without trailers, or a reset with NO_ERROR or CANCEL, which node:http2 reports as an end;
    // trailers: null). Passed on as complete, it reached grpc-js as `13 INTERNAL: Received
    // RST_STREAM with code 0`; it fails as a broken-off answer instead (UNAVAILABLE, saying so).
    // Trailers that came without a grpc-status end an answer the app finished: relayed as they
    // are, counted UNKNOWN. HTTP/2 callers only: an HTTP/1.1 or mux one may be grpc-web, whose
    // status travels in its body; and not a grpc-web call over HTTP/2 either, whose whole answer
    // ends with a bare END_STREAM.
    // Judged before a held head goes out: nothing of the answer has reached the caller then,
    // and the break is retried as the reset it is (a policy with `reset`), as one with an error
    // code is, rather than released and ended with UNAVAILABLE.
    if (this.grpc && this.h2 && this.grpcWebType === undefined && trailers === null && h === this.current && h.status === 200 && this.grpcStatus < 0) {
      this.onAttemptError(h, codedError(GRPC_NO_STATUS, 'it ended without a grpc-status'));
      return;
    }
    if (this.heldHead !== null && h === this.current) {
      if (this.mayRetry('response', h.status, endedGrpcStatus(trailers), true)) {
        this.heldHead = null;
        this.retryNext();
        return;
      }
      this.releaseHead();
    }
    // A gRPC call fails on the server's side with INTERNAL or UNAVAILABLE.
    this.settle(h, h.status >= 500 || (this.grpc && isGrpcServerFailure(trailers, this.pendingTrailers)) ? 'failure' : 'success');
    if (h !== this.current) return;
    this.current = null;
    const trailersOnly = this.sentTrailersOnly();
    if (!this.ended && !this.clientGone) {
      if (trailers !== null) this.forwardTrailers(trailers);
      else if (this.pendingTrailers !== null) this.res.addTrailers(this.pendingTrailers);
      this.ended = true;
      this.res.end();
    }
    // Answered whole while the caller still sends (a gRPC trailers-only answer ended with its head, before this).
    this.stopCallerBody(trailersOnly);
    // A gRPC answer that ended without a grpc-status failed, as its caller reads it: by its HTTP status.
    if (this.grpc && this.grpcStatus < 0) this.grpcStatus = grpcStatusOfHttp(this.status);
    this.finish(this.status);
  }

  onAttemptError(h: AttemptHandler, err: Error): void {
    // The caller went away mid-body: its request's 'close' reached the attempt before its
    // response's reached onClientGone. Counted as 499, not the endpoint's failure.
    if (err instanceof BodyCutOffError) this.clientGone = true;
    const ours = h === this.current;
    // An attempt we abandoned was settled then; a caller that went away or broke its own body says nothing about the endpoint.
    const clientFault = err instanceof CallerFaultError;
    // A try sent to an endpoint a reload had just removed (its pool closed) says nothing about it either.
    const blameless = clientFault || (!h.connected && h.endpoint.removed);
    this.settle(h, ours && !this.clientGone && !blameless ? 'failure' : 'neutral');
    if (!ours) return;
    this.current = null;
    if (this.finished) return;
    if (this.ended) {
      // The caller's answer had ended before the attempt did (finishAnswered): the break comes
      // too late to change it, and the call counts as what its caller got, not as the 14 that
      // ending it here would have said. A caller still sending is told to stop, as then.
      this.stopAnsweredBody();
      this.finish(this.status);
      return;
    }
    if (this.clientGone) {
      this.finish(499);
      return;
    }
    if (this.headSent && !this.retractHead()) {
      if (this.grpc && this.h2 && !clientFault) {
        // A gRPC answer begun ends with a status in its trailers (UNAVAILABLE, saying why), as
        // at its deadline: a reset would reach the caller as `13 INTERNAL: Received RST_STREAM`.
        this.reply('retries-exhausted', resetText(this.subset!.service, h, err));
        return;
      }
      // Mid-body failure: some of the answer reached the client; cut it so the client sees it,
      // counted under the status the failure is answered with when nothing went out (503, or
      // the client's own 4xx), never the upstream's 200.
      this.res.destroy(err);
      this.finish(clientFault ? (err as ClientBodyError).status : REASONS['retries-exhausted'].status);
      return;
    }
    if (clientFault) {
      this.replyError(err);
      return;
    }
    this.takeBodyBack(h);
    if (!h.connected && h.endpoint.removed && isConnectError(err) && this.resendAfterRemoval(h)) return;
    const outcome: AttemptOutcome = !h.connected && isConnectError(err) ? 'connect-failure' : isTimeoutError(err) ? 'timeout' : 'reset';
    if (this.mayRetry(outcome, 0, -1, h.connected)) {
      this.scheduleRetry();
      return;
    }
    if (outcome === 'connect-failure') this.replyUnsent('upstream-connect-failure', `could not connect to ${this.subset!.service} at ${h.endpoint.key}: ${connectFailureText(err)}`);
    else if (outcome === 'timeout') this.reply('timeout', `${this.subset!.service} did not answer within the per-try timeout`);
    // Once connected, the request may have reached the app: `upstream-connect-failure` would tell
    // a calling sidecar it never did, and that sidecar would replay a POST.
    else this.reply(this.attempts > 1 || h.connected ? 'retries-exhausted' : 'upstream-connect-failure', resetText(this.subset!.service, h, err));
  }

  /**
   * A call that never reached the app (its peer refused it unprocessed, or the peer sidecar
   * answered it itself) hands its streamed body back whole (h2-upstream.ts): a retry elsewhere
   * can send it, where a taken body could go nowhere else.
   */
  private takeBodyBack(h: AttemptHandler): void {
    const returned = h.control?.returnedBody;
    if (returned != null) this.streamBody(returned);
  }

  /**
   * The body tries send from now on: the caller's stream, one made of what was buffered and the
   * rest, or one a call that never reached the app handed back. An HTTP/2 stream is watched
   * here for its limit and stalls (an HTTP/1.1 or mux body is, by its connection).
   */
  private streamBody(body: Buffer | Readable): void {
    this.body = body;
    if (this.h2 && !Buffer.isBuffer(body)) watchBody(body, this.deps.maxBodyBytes, this);
  }

  /** A retry goes to the endpoints in force now, not those of when the request began. */
  followReload(): void {
    if (this.subset!.successor !== null) this.subset = latestSubset(this.subset!);
  }

  /**
   * The try found its endpoint's pool closed: a reload removed the endpoint after this request
   * chose its subset. Nothing was sent, so it was no try: the request goes again, at once and
   * without taking a retry, to the current endpoints. When no change replaced the subset (its
   * service was dropped), nothing is left to send it to. False when a streamed body was begun
   * after all: the failure is then answered as any other.
   */
  private resendAfterRemoval(h: AttemptHandler): boolean {
    if (!this.replayable && bodyTaken(this.body as Readable)) return false;
    this.attempts--;
    const stale = this.subset!;
    this.followReload();
    if (this.subset === stale) {
      this.replyUnsent('no-healthy-endpoints', `no endpoint for ${stale.service}: ${h.endpoint.key} was removed from its endpoints`);
      return true;
    }
    this.send();
    return true;
  }

  private armTimer(now = performance.now()): void {
    // A try's wait for its answer starts once the whole request is in; the last try allowed has only the deadline.
    const retry = this.route!.retry;
    const perTry = this.bodyPending || retry === null || this.attempts > retry.attempts ? 0 : retry.perTryTimeoutMs;
    let delay = this.deadlineAt - now;
    this.timerIsPerTry = perTry > 0 && perTry < delay;
    if (this.timerIsPerTry) delay = perTry;
    if (delay === Infinity) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = armAt(this, delay);
  }

  onTimer(): void {
    if (this.finished) return;
    if (this.bodyPending && this.h2 && this.grpcTimeoutSlot < 0) {
      this.checkBodyStall();
      return;
    }
    if (this.timerIsPerTry && performance.now() < this.deadlineAt - 1) {
      const h = this.current;
      // The per-try timeout covers the wait for response headers (a streaming body has only the
      // deadline), and exists so that another try can follow: a try no retry could follow (a
      // POST or gRPC call that reached its app, a body already read) runs to the deadline.
      // So does a try whose retry the budget refuses: cutting it would only turn a slow success into a 504.
      if (this.headSent || h === null || !this.mayRetry('timeout', 0, -1, h.connected)) {
        this.armDeadline();
        return;
      }
      this.retryNext();
      return;
    }
    // A deadline past the timer's limit is waited for in steps.
    const left = this.deadlineAt - performance.now();
    if (left > 1) {
      this.timer = armAt(this, left);
      return;
    }
    this.onDeadline();
  }

  /** An HTTP/2 request body with no deadline has begun to come in: its stall check starts. */
  private watchStall(): void {
    this.bodyAt = performance.now();
    this.timer = setTimeout(onTimer, HEAD_LIMIT_MS, this);
  }

  /**
   * An HTTP/2 request body must move at least once per head limit, as an HTTP/1.1 one must
   * (sidecar/http1/server.ts), while the route's timeouts wait for its end: node:http2 has no
   * such limit, and a client that never ends its stream would hold the exchange, its attempt
   * and the drain for ever. Nothing moved: if the reader (the attempt) paused the body, it
   * stopped reading what the client had for it (504 timeout, the endpoint's fault); else the
   * client sent nothing (408 bad-request, its own).
   */
  private checkBodyStall(): void {
    const idle = performance.now() - this.bodyAt;
    if (idle < HEAD_LIMIT_MS) {
      this.timer = setTimeout(onTimer, HEAD_LIMIT_MS - idle, this);
      return;
    }
    const body = this.body;
    const unread = body !== null && !Buffer.isBuffer(body) && body.isPaused();
    const seconds = HEAD_LIMIT_MS / 1000;
    this.requestBodyFailed(unread ? new BodyNotReadError(`none of the request body was read for ${seconds} s`) : new ClientBodyError(`the request body stalled: none of it came for ${seconds} s`, 408));
  }

  /**
   * A gRPC call's `grpc-timeout` is its deadline, replacing the route's timeout (the caller
   * knows how long its call may last, streams included); each attempt sends the time left.
   * A malformed one is the caller's error, answered here (false) rather than by whichever
   * server reads it after this sidecar has ignored it.
   */
  private readGrpcTimeout(): boolean {
    const out = this.headers;
    for (let i = 0; i < out.length; i += 2) {
      if (out[i]!.length !== 12 || out[i]!.toLowerCase() !== 'grpc-timeout') continue;
      const ms = grpcTimeoutMs(out[i + 1]!);
      if (ms === undefined) {
        this.reply('bad-request', `malformed grpc-timeout ${JSON.stringify(out[i + 1])}: expected 1-8 digits and a unit (H, M, S, m, u, n)`);
        return false;
      }
      this.deadlineAt = this.startedAt + ms;
      this.grpcTimeoutSlot = i + 1;
      return true;
    }
    return true;
  }

  /** Overall timeout: abandon the current attempt and answer 504, or cut a response in progress. */
  onDeadline(): void {
    if (this.finished) return;
    if (this.ended) {
      this.finishAnswered();
      return;
    }
    // A gRPC call's deadline that passes while the caller still sends is no fault of the endpoint.
    this.abandonAttempt(this.bodyPending ? 'neutral' : 'failure');
    if (this.headSent && this.grpc && this.h2 && !this.clientGone) {
      // A gRPC stream past its deadline ends with DEADLINE_EXCEEDED in the trailers, not a reset
      // (sidecarReply ends a begun gRPC answer that way).
      this.reply('timeout', 'deadline exceeded');
      return;
    }
    if (this.headSent && !this.retractHead()) {
      this.res.destroy();
      this.finish(REASONS.timeout.status);
      return;
    }
    this.reply('timeout', `${this.destination || 'upstream'} did not answer within ${this.grpcTimeoutSlot >= 0 ? 'the call\'s grpc-timeout' : `${this.route?.timeoutMs ?? 0} ms`}`);
  }

  /**
   * The caller's answer ended before its attempt did: a head with grpc-status went on as a
   * trailers-only answer while the app's stream stayed open (or a body came whole at its
   * declared length, its end not yet seen). At the deadline the attempt is given up, judged by
   * that answer, and the call counts as what its caller got; before, as the DEADLINE_EXCEEDED
   * (504) no caller saw.
   */
  private finishAnswered(): void {
    this.abandonAttempt(this.status >= 500 || this.grpcStatus === 13 || this.grpcStatus === 14 ? 'failure' : 'success');
    this.stopAnsweredBody();
    this.finish(this.status);
  }

  /** The caller's answer ended before its attempt did, and the attempt is over now. */
  private stopAnsweredBody(): void {
    this.stopCallerBody(this.sentTrailersOnly());
  }

  /** The answer ended as one HEADERS frame relayed whole (writeHeadH2's trailers-only answer), not through node's compat response. */
  private sentTrailersOnly(): boolean {
    return this.ended && this.pendingTrailers?.['grpc-status'] !== undefined;
  }

  /**
   * The caller's answer is out, or on its way, and nothing will read the rest of its body: an
   * HTTP/2 caller still sending is told to stop, with RST_STREAM NO_ERROR once the answer is out
   * (stopH2Body; RFC 9113 §8.1, as Envoy does). Unread, its stream would stay open, and in
   * flight, for as long as it sent, and a drain would wait its whole timeout. That is a body
   * still coming in, or one never taken: answered before the request went on (no route, a
   * fault's abort). `trailersOnly`: the answer was one HEADERS frame that ended the stream, with
   * no trailers to wait for.
   */
  private stopCallerBody(trailersOnly: boolean): void {
    if (this.h2 && !this.clientGone && (this.bodyPending || (!this.forwarded && h2HasBody(this.req)))) stopH2Body(this.req, !trailersOnly);
  }

  /**
   * The drain timeout ran out (the sidecar exits next) before any of the answer reached the
   * caller: it gets `503 retries-exhausted` (the app may have the request: no reason that says
   * it never did) rather than a closed connection. A gRPC answer begun over HTTP/2 ends with
   * that reason's UNAVAILABLE in its trailers, as at its deadline: the exit's reset would reach
   * grpc-js as `13 INTERNAL: Received RST_STREAM`, which no gRPC client retries. Any other
   * answer begun is left to be cut with its connection. An upgrade's client socket is its
   * splice's (stages/upgrade.ts), which answers only while the endpoint has not; one not yet
   * spliced (in its fault's delay) is answered here, and its delay's end finds it finished.
   * An answer that had ended for its caller while its app's stream stayed open is given up and
   * counted as what the caller got (finishAnswered), as at a deadline.
   */
  cutOff(why: string): boolean {
    if (this.finished || this.clientGone) return false;
    if (this.ended) {
      this.finishAnswered();
      return true;
    }
    const service = this.destination || 'the upstream';
    const unanswered = `${why} before ${service} answered`;
    if (this.upgradeSocket !== null) {
      if (this.cutUpgrade !== null) return this.cutUpgrade(unanswered);
      this.reply('retries-exhausted', unanswered);
      return true;
    }
    const inTrailers = this.headSent && this.grpc && this.h2;
    if (this.headSent && !inTrailers && !this.retractHead()) return false;
    // The endpoint is not to blame for the sidecar's own shutdown.
    this.abandonAttempt('neutral');
    this.reply('retries-exhausted', inTrailers ? `${why} while ${service} was answering` : unanswered);
    return true;
  }

  onClientGone(): void {
    if (this.ended) {
      // Its answer had ended (a trailers-only head, writeHeadH2) while its app's stream stayed
      // open: nothing waits for that stream now. Given up and counted as what the caller got,
      // as at a deadline, which a call may not have (else it was never counted, and the app's
      // stream stayed open for as long as the app kept it).
      if (this.h2 && !this.finished && this.current !== null) this.finishAnswered();
      return;
    }
    this.clientGone = true;
    if (this.current === null) this.finish(499);
    else {
      const h = this.current;
      if (h.control !== null) h.control.abort();
      else {
        // Not connected yet: the handler aborts itself when it does (it is no longer current).
        this.current = null;
        this.settle(h, 'neutral');
        this.finish(499);
      }
    }
  }

  /**
   * The answer for a try that did not go out. Its own reason says the app never got the
   * request, which a caller may act on (a saga taking a payment as not made); after an
   * earlier try that may have reached the app, it is `retries-exhausted` instead.
   */
  private replyUnsent(reason: 'no-healthy-endpoints' | 'circuit-open' | 'upstream-connect-failure', detail: string): void {
    if (this.mayHaveDelivered) this.reply('retries-exhausted', `${detail}, after a try that may have reached it`);
    else this.reply(reason, detail);
  }

  /** A sidecar-made response (SPEC §6) that ends this exchange; `extra`: header lines of the reason's own (SkeinError.responseHeaders). */
  reply(reason: Reason, detail?: string, status?: number, extra?: readonly string[]): void {
    if (this.finished) return;
    this.reason = reason;
    this.reasonDetail = detail ?? REASONS[reason].message;
    this.bodyChunks = null;
    if (this.upgradeSocket !== null) {
      const code = status ?? REASONS[reason].status;
      socketReply(this.upgradeSocket, this.deps.proxyName, code, reason, detail, false, extra);
      this.finish(code);
      this.res.emit('close');
      return;
    }
    // Only a gRPC answer not begun ends with its HEADERS frame (trailers-only, sidecarReply).
    const trailersOnly = this.grpc && !this.headSent;
    const sent = this.clientGone ? REASONS[reason].status : sidecarReply(this.res, this.deps.proxyName, reason, detail, this.grpc, status, this.grpcWebType, this.receivedStatus, extra);
    // A gRPC answer is HTTP 200: its grpc-status is what metrics, stats and canary analysis judge.
    if (this.grpc) this.grpcStatus = REASONS[reason].grpc;
    this.ended = true;
    this.stopCallerBody(trailersOnly);
    this.finish(sent);
  }

  /** A fault stage let the request through (stages/fault.ts): on to the route and subset it chose. */
  faultPassed(): void {
    // The delay's timer (handleOutbound) has fired: the one timer is free for the deadline.
    this.timer = undefined;
    if (!this.finished) this.forward(this.route!, this.subset!, this.outlier, this.budget);
  }

  replyError(err: unknown): void {
    // The rest of a body past the limit, malformed or stalled is never read.
    if (err instanceof ClientBodyError) this.res.refuseBody?.();
    if (isSkeinError(err)) this.reply(err.reason, err.message, err.status, err.responseHeaders());
    else this.reply('bad-request', (err as Error).message);
  }

  private retryAfterResponse(h: AttemptHandler, status: number, raw: RawHeaders): boolean {
    // A head without grpc-status is no trailers-only answer: its status is yet to come (-1).
    const value = this.grpc ? rawHeader(raw, 'grpc-status') : undefined;
    const grpcStatus = value === undefined ? -1 : grpcStatusCode(value);
    // A peer sidecar that could not reach its app, or whose rate limit refused the request (a
    // 429 reaches here only when `on` lists it), never delivered it. Only its own answer says so
    // (marked in the mux frame, or over HTTP/2 with its connection's token: h2-sidecar-made.ts):
    // an app may send any x-skein-reason header, and a plain endpoint's is never believed.
    const neverSent =
      (status === 503 || status === 429 || this.grpc) && h.control?.sidecarMade === true && neverReachedApp(rawHeader(raw, 'x-skein-reason'), status);
    if (neverSent) this.takeBodyBack(h);
    const waitAtLeast = status === 429 ? retryAfterMs(rawHeader(raw, 'retry-after'), Date.now()) : 0;
    return this.mayRetry('response', status, grpcStatus, !neverSent, waitAtLeast);
  }

  /**
   * Retry decision: policy conditions, idempotency, attempts left, budget, and a body that can
   * be sent again: none, a buffered copy, or a stream no attempt has begun to read (the tries
   * so far never got to send: connect failures). `waitAtLeast`: a 429's Retry-After, in ms
   * (0 for none); one past RETRY_AFTER_MAX_MS or the deadline passes the answer back at once.
   */
  private mayRetry(outcome: AttemptOutcome, status: number, grpcStatus: number, reachedUpstream: boolean, waitAtLeast = 0): boolean {
    if (reachedUpstream) this.mayHaveDelivered = true;
    const reason = this.retryReasonFor(outcome, status, grpcStatus, reachedUpstream);
    if (reason === undefined || waitAtLeast > RETRY_AFTER_MAX_MS) return false;
    const retry = this.route!.retry!;
    const backoff = Math.max(waitAtLeast, backoffDelay(this.attempts - 1, retry.backoffBaseMs, retry.backoffMaxMs, this.deps.random));
    // A retry whose wait would end past the deadline could never be sent (Envoy's global timeout
    // fires during such a backoff): it is not made, takes no token and is not counted.
    if (performance.now() + backoff >= this.deadlineAt) return false;
    if (this.budget !== null && !this.budget.tryAcquireRetry()) {
      // A try whose retry the budget refused at its per-try timeout runs on, and is asked again
      // when it fails: still one retry not sent.
      if (this.budgetRefusedTry !== this.attempts) this.deps.metrics.retryBudgetExhausted(this.destination);
      this.budgetRefusedTry = this.attempts;
      return false;
    }
    this.backoffMs = backoff;
    this.retryReasonPending = reason;
    if (this.retries !== null) retryTryFailed(this.retries, status, grpcStatus);
    return true;
  }

  /**
   * The granted retry's backoff is over and it goes out: counted now, so that one given up
   * during its backoff (the caller went away, the deadline or a drain came first) is not counted
   * as sent, as one whose backoff would outlast the deadline is not.
   */
  countRetry(): void {
    const reason = this.retryReasonPending;
    if (reason === undefined) return;
    this.retryReasonPending = undefined;
    this.deps.metrics.retry(this.destination, reason);
    const recorder = this.deps.recorder;
    if (recorder === null) return;
    // A retry is a request of its own to the upstream (OpenTelemetry's resend, Envoy's per-try
    // span): its span, under the hop's, is what the upstream's span of it hangs under. Only
    // where that span is exported: an id no exporter records would cut the upstream's spans off.
    const spanId = recorder.exportsSpans && this.sampled ? this.deps.ids.spanId() : '';
    if (spanId !== '') this.retrace(spanId);
    (this.retries ??= []).push({ at: performance.now(), reason, attempt: this.attempts, spanId, endedAt: NaN, status: 0, grpcStatus: -1 });
  }

  /** mayRetry's policy, attempts, idempotency and body conditions, without taking from the budget: the retry's reason, or undefined. */
  private retryReasonFor(outcome: AttemptOutcome, status: number, grpcStatus: number, reachedUpstream: boolean): ReturnType<typeof retryReason> {
    const route = this.route!;
    const retry = route.retry;
    if (retry === null || this.attempts > retry.attempts || (!this.replayable && bodyTaken(this.body as Readable))) return undefined;
    return retryReason(retry.on, outcome, status, grpcStatus, isRetryableMethod(this.method, route.retryNonIdempotent), reachedUpstream);
  }

  /**
   * The try in flight failed and mayRetry granted its retry (the one decision a try gets): it
   * is given up now, counted against its endpoint once, and the rest of its answer discarded
   * (an HTTP/1.1 connection reads a small rest off and is kept, else is closed; a mux stream
   * is reset, an HTTP/2 stream cancelled); the retry follows its backoff.
   */
  private retryNext(): void {
    this.abandonAttempt('failure', true);
    this.scheduleRetry();
  }

  private scheduleRetry(): void {
    this.backoffTimer = setTimeout(onBackoffDone, this.backoffMs, this);
  }

  /** Arms the exchange's one timer for the deadline alone: no per-try cut (none is due, or no try is in flight). */
  private armDeadline(now = performance.now()): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timerIsPerTry = false;
    this.timer = this.deadlineAt === Infinity ? undefined : armAt(this, this.deadlineAt - now);
  }

  /**
   * Drops the attempt in flight (and a pending retry), counted against the endpoint unless
   * `neutral`; `discard`: only its answer is unwanted (a retry), which may keep its connection
   * (CallControl.discard).
   */
  private abandonAttempt(verdict: Verdict = 'failure', discard = false): void {
    if (this.backoffTimer !== undefined) {
      clearTimeout(this.backoffTimer);
      this.backoffTimer = undefined;
    }
    const h = this.current;
    if (h === null) return;
    this.current = null;
    this.settle(h, verdict);
    if (h.control === null) return;
    if (discard) h.control.discard();
    else h.control.abort();
  }

  /** The caller's HTTP/2 body grew past `--max-request-body`. */
  bodyTooLarge(limit: number): void {
    this.requestBodyFailed(new BodyTooLargeError(limit));
  }

  /**
   * The request body failed. Past the limit, malformed or stalled by the caller
   * (ClientBodyError): no fault of the endpoint, so the attempt is dropped without counting
   * against it and the caller gets the error's status with `bad-request`. Left unread by the
   * upstream while the caller had more (BodyNotReadError): a timeout of the endpoint. Either
   * way an answer already begun is cut, but for an HTTP/2 gRPC call's, which ends with the
   * reason's status in its trailers (a bare RST_STREAM NO_ERROR reaches grpc-js as `13
   * INTERNAL: … Call ended without gRPC status`). Other failures (the caller gone) are the
   * response's 'close' to handle: false.
   */
  requestBodyFailed(err: Error): boolean {
    const clientFault = err instanceof ClientBodyError;
    if (!clientFault && !(err instanceof BodyNotReadError)) return false;
    if (this.finished) return true;
    this.abandonAttempt(clientFault ? 'neutral' : 'failure');
    this.bodyChunks = null;
    const inTrailers = this.headSent && this.grpc && this.h2;
    const trailersOnly = this.grpc && !this.headSent;
    if (this.headSent && !inTrailers && !this.retractHead()) {
      this.res.destroy();
      this.finish(clientFault ? (err as ClientBodyError).status : REASONS.timeout.status);
    } else if (clientFault) this.replyError(err);
    else this.reply('timeout', `${this.destination}: ${err.message}`);
    if (this.h2) stopH2Body(this.req, !trailersOnly);
    return true;
  }

  /**
   * The half-open circuit's trial is answering: a non-failure closes the circuit now rather
   * than at the end of a body that may stream for hours while every other request is refused.
   * HTTP is judged by its head, gRPC by its first message (a head alone may still end in a
   * failure status, as a peer sidecar relays trailers-only answers as head and trailers).
   */
  private trialAnswered(h: AttemptHandler): void {
    if (h.status < 500) h.admission = this.subset!.breaker!.trialAnswered();
  }

  /**
   * Reports an attempt's end to the in-flight count, breaker and outlier detector, once. A
   * `neutral` one (the caller went away or broke its own body) only frees its slot: counted
   * as a success it would close a half-open circuit or end an endpoint's failure streak.
   */
  private settle(h: AttemptHandler, verdict: Verdict): void {
    if (h.settled) return;
    h.settled = true;
    h.endpoint.active--;
    this.subset!.breaker?.release(h.admission, verdict);
    if (this.outlier !== null && verdict !== 'neutral') this.outlier.record(h.endpoint.key, verdict === 'failure', h.sentDuring);
  }

  private forwardTrailers(trailers: RawHeaders | Record<string, string | string[]>): void {
    const isEmpty = isRawList(trailers) ? trailers.length === 0 : Object.keys(trailers).length === 0;
    if (isEmpty && this.pendingTrailers === null) return;
    const out = { ...this.pendingTrailers, ...(isEmpty ? {} : trailerObject(trailers)) };
    if (out['grpc-status'] !== undefined) this.grpcStatus = grpcStatusCode(out['grpc-status']);
    this.res.addTrailers(out);
  }

  /** Ends the exchange: timers off, duration and status into the edge's metrics. */
  finish(status: number): void {
    if (this.finished) return;
    this.finished = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.backoffTimer !== undefined) clearTimeout(this.backoffTimer);
    const seconds = (performance.now() - this.startedAt) / 1000;
    if (this.edge !== null) this.edge.observe(status, seconds, this.grpc ? this.grpcStatus : -1);
    if (this.deps.recorder !== null) {
      // A request answered before it was forwarded (no route, a fault, denied, the app not
      // ready, a bad request) took no trace ids there, yet its hop belongs in the caller's
      // trace as much as a forwarded one (SPEC §6); ids only, as no request goes out.
      if (this.traceId === '') continueTrace(this, this, this.deps.ids);
      this.deps.recorder.finished(this, status, seconds);
    }
  }
}

/** The latest retry's try failed and the next retry is granted: that retry's span ends here, with what its try got. */
function retryTryFailed(retries: RetryEvent[], status: number, grpcStatus: number): void {
  const tried = retries[retries.length - 1]!;
  tried.endedAt = performance.now();
  tried.status = status;
  tried.grpcStatus = grpcStatus;
}

/**
 * An HTTP/2 caller whose body will not be read is told to stop sending once the answer is out
 * (RST_STREAM NO_ERROR, RFC 9113 §8.1), and what it sent is dropped so the stream can end:
 * the stream, and the response's 'close', would otherwise wait for a client that may never
 * end it, or for a reader that is gone. An answer written through node's compat response
 * (`viaResponse`: all but a trailers-only one) is out only once its trailers are: that response
 * always waits for them, and its END_STREAM goes with them (none: an empty DATA frame),
 * submitted on the setImmediate after its last DATA went ('wantTrailers', whose response
 * listener came first). A reset submitted before would go ahead of them: the caller would see
 * its answer cut, a gRPC one without its status. An answer that can have no body (to a HEAD,
 * a 204, 205 or 304), or a trailers-only one, ends with its HEADERS frame instead: node sends
 * it with END_STREAM, and there are no trailers to wait for. Either way the reset waits until
 * that last frame has left nghttp2 (closeOnceSent).
 */
function stopH2Body(req: ProxyRequest, viaResponse: boolean): void {
  const stream = callerStream(req);
  if (!stream.closed && !stream.destroyed) {
    if (viaResponse && stream.sentTrailers === undefined && !bodiless(req.method, stream)) stream.once('wantTrailers', closeAfterTrailers);
    else setImmediate(closeOnceSent, stream);
  }
  req.resume();
}

/** An HTTP/2 request whose HEADERS frame did not end its stream: a body follows, or may. */
function h2HasBody(req: ProxyRequest): boolean {
  return !callerStream(req).endAfterHeaders;
}

/** An HTTP/2 caller's stream, under node's compat request (the response's is stages/reply.ts's h2Stream). */
function callerStream(req: ProxyRequest): ServerHttp2Stream {
  return (req as unknown as { stream: ServerHttp2Stream }).stream;
}

/** node's respond() ends the stream with the head of these answers (RFC 9110 §6.4.1). */
function bodiless(method: string | undefined, stream: ServerHttp2Stream): boolean {
  const status = Number(stream.sentHeaders?.[':status']);
  return method === 'HEAD' || status === 204 || status === 205 || status === 304;
}

function closeAfterTrailers(this: ServerHttp2Stream): void {
  setImmediate(closeOnceSent, this);
}

/**
 * The longest wait between two looks at a stream whose answer has not left (closeOnceSent): a
 * write held up that long waits on a caller not reading, and a poll every 10 ms for each of its
 * streams cost a core's tenth per thousand of them, for as long as it did not read.
 */
const CLOSE_POLL_MAX_MS = 1000;

/**
 * Resets `stream` with NO_ERROR once the frame that ends its answer has left nghttp2
 * (`localClose`: END_STREAM sent). Submitted earlier, while the session's last write is still
 * on its way (a TLS write completes on a later turn), node holds the reset back, but submits
 * it at once if the stream is destroyed meanwhile, which the caller's body ending does; nghttp2
 * then drops the answer's HEADERS queued behind it (NGHTTP2_ERR_STREAM_CLOSING), and the caller
 * sees its stream end with no answer at all. First checked on the check phase after the
 * answer, which runs after node's own write of the turn; while a write is held up, after 10 ms,
 * then twice as long each time, up to CLOSE_POLL_MAX_MS.
 */
function closeOnceSent(stream: ServerHttp2Stream, waitMs = 10): void {
  if (stream.closed || stream.destroyed) return;
  if (stream.state.localClose === 1) stream.close(h2constants.NGHTTP2_NO_ERROR);
  else setTimeout(closeOnceSent, waitMs, stream, Math.min(waitMs * 2, CLOSE_POLL_MAX_MS)).unref();
}

/**
 * What a failed attempt's 503 says: a malformed answer why (its text names the endpoint); an
 * answer broken off after its head (nothing of it reached the caller) what broke it, e.g. a
 * peer sidecar's reset, which names the malformed body its app sent.
 */
function resetText(service: string, h: AttemptHandler, err: Error): string {
  if ((err as { code?: string }).code === H1_MALFORMED) return `${service}: ${err.message}`;
  if (h.status !== 0) return `${service} at ${h.endpoint.key} broke off its answer: ${err.message}`;
  return `${service} at ${h.endpoint.key} reset the connection before answering`;
}

/**
 * A field an HTTP/1.1 answer repeats, for an HTTP/2 caller's header object: Set-Cookie lines
 * stay apart (node sends an array as separate fields; RFC 9110 §5.3 forbids joining them),
 * others are joined as the list they are, since node refuses an array for a single-value name.
 */
function repeatedField(name: string, prev: string | string[], value: string): string | string[] {
  if (name !== 'set-cookie') return `${prev as string}, ${value}`;
  if (typeof prev === 'string') return [prev, value];
  prev.push(value);
  return prev;
}

/**
 * The grpc-status of a call that ended with `trailers`, as its metrics count it
 * (grpcStatusCode): a value that is no code, or none (repeated, absent, no trailers), is
 * UNKNOWN, the call having ended without a status its caller can read.
 */
function endedGrpcStatus(trailers: RawHeaders | Record<string, string | string[]> | null): number {
  const value = trailers === null ? undefined : isRawList(trailers) ? rawHeader(trailers, 'grpc-status') : trailers['grpc-status'];
  return typeof value === 'string' ? grpcStatusCode(value) : GRPC_UNKNOWN;
}

/** A gRPC answer that ended without a grpc-status: it broke off (onAttemptComplete). */
const GRPC_NO_STATUS = 'ERR_SKEIN_GRPC_NO_STATUS';

/** The answer's grpc-status (trailers, else a trailers-only answer's headers) is INTERNAL (13) or UNAVAILABLE (14). */
function isGrpcServerFailure(trailers: RawHeaders | Record<string, string | string[]> | null, pending: Record<string, string> | null): boolean {
  const status = (trailers !== null && !isRawList(trailers) ? trailers['grpc-status'] : undefined) ?? pending?.['grpc-status'];
  return status === '13' || status === '14';
}

const GRPC_TIMEOUT_UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000_001 };

/** `grpc-timeout` (1-8 digits and a unit, per the gRPC HTTP/2 protocol) in milliseconds; undefined when malformed. */
export function grpcTimeoutMs(value: string): number | undefined {
  const match = /^(\d{1,8})([HMSmun])$/.exec(value);
  return match === null ? undefined : Number(match[1]) * GRPC_TIMEOUT_UNIT_MS[match[2]!]!;
}

/**
 * The time left as a `grpc-timeout` value (at most 8 digits: milliseconds below 10^8 ms, else
 * seconds), told as at most 2^31-1 ms: grpc-js servers, like Node's timers, end a call with a
 * longer deadline at once. The sidecar itself still waits for the caller's whole deadline.
 */
export function grpcTimeoutValue(ms: number): string {
  if (ms < 1e8) return `${Math.max(1, Math.floor(ms))}m`;
  return `${Math.floor(Math.min(ms, TIMER_MAX_MS) / 1000)}S`;
}

/** Trailers as a raw flat list (HTTP/1.1) rather than an object (HTTP/2, the mux); `Array.isArray` does not narrow readonly arrays. */
function isRawList(trailers: RawHeaders | Record<string, string | string[]>): trailers is RawHeaders {
  return Array.isArray(trailers);
}

/**
 * HTTP/1.1 trailers come as a raw flat list, HTTP/2 and mux trailers as an object. Names a
 * head would drop (H.Drop: `proxy-*`, `keep-alive`, `trailer`, sanitized ones, a peer
 * sidecar's mark) go no further here.
 */
function trailerObject(trailers: RawHeaders | Record<string, string | string[]>): Record<string, string> {
  const out: Record<string, string> = {};
  if (isRawList(trailers)) {
    for (let i = 0; i < trailers.length; i += 2) {
      const name = headerText(trailers[i]!);
      if (classify(name) !== H.Drop) out[name.toLowerCase()] = headerText(trailers[i + 1]!);
    }
  } else {
    for (const [k, v] of Object.entries(trailers)) if (!k.startsWith(':') && classify(k) !== H.Drop) out[k] = Array.isArray(v) ? v.join(', ') : v;
  }
  return out;
}
