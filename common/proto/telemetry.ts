/**
 * The JSON carried by the push stream's `Telemetry {kind, json}` messages (sidecar → control
 * plane) and by the `tap-start` Command (control plane → sidecar). mesh.proto keeps these
 * as JSON text so the proto stays small; this file is their one definition for both ends.
 */

/**
 * Upper bounds (seconds) of the latency histogram: sidecar hops are sub-millisecond to
 * seconds. The sidecars' `skein_request_duration_seconds` buckets, the stats messages'
 * `bounds`, and the resolution the canary's `maxP99` is judged at.
 */
export const DURATION_BUCKETS: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * The name sidecars give a peer they cannot name: the destination of a request that names no
 * service the snapshot knows (a name from a request must not become a label), or a caller
 * without identity. A service may still be named so: the control plane's stats key the
 * destination ones (outbound, no subset) apart (control-plane/observability/stats.ts NO_ROUTE).
 */
export const UNNAMED_PEER = 'unknown';

/** `kind: "stats"`: what each edge counted since the previous message (deltas, not totals). */
export interface StatsMessage {
  /** Upper bounds (seconds) of the latency buckets; `buckets` has one more slot (+Inf). */
  readonly bounds: readonly number[];
  readonly edges: readonly EdgeDelta[];
  /** Circuit breakers this sidecar holds that are not closed, plus any that changed. */
  readonly breakers: readonly BreakerState[];
  /**
   * Every endpoint this sidecar's outlier detection holds ejected now; sent while there is one
   * and once more when the last one returns. Absent from sidecars older than the field (none known).
   */
  readonly ejections?: readonly EjectionState[];
  /**
   * The snapshot version the sidecar ran when the interval this message covers began (when it
   * took the previous message's counts): every request counted here was routed by that snapshot
   * or, when it installed another meanwhile, by a later one, since versions only grow. '' while
   * it ran none. A canary step's window counts only messages whose interval began under the
   * step's snapshot or a later one (control-plane/observability/stats.ts `openWindow`). Absent
   * from sidecars older than the field (2026-12-07).
   */
  readonly fromSnapshot?: string;
}

export interface EdgeDelta {
  readonly direction: 'inbound' | 'outbound';
  readonly source: string;
  readonly destination: string;
  readonly subset: string;
  /** Requests finished by status class: [1xx, 2xx, 3xx, 4xx, 5xx] (no answer counts as 5xx). */
  readonly classes: readonly number[];
  /**
   * gRPC calls that ended with a grpc-status other than 0 (OK) and are not in `classes`' 5xx
   * already (a failure is counted once: failures = 5xx + grpcFailures).
   */
  readonly grpcFailures: number;
  /** Non-cumulative counts per latency bucket. */
  readonly buckets: readonly number[];
  readonly sumSeconds: number;
}

export interface BreakerState {
  readonly destination: string;
  readonly subset: string;
  readonly state: 'closed' | 'open' | 'half-open';
}

/** An endpoint of `destination` ejected from this sidecar's balancing (sidecar/resilience/outlier.ts). */
export interface EjectionState {
  readonly destination: string;
  /** `address:port` (`[v6]:port`), as the sidecar's /clusters names it. */
  readonly endpoint: string;
  /** Epoch milliseconds when the ejection began and when it ends (unless the endpoint shows it is back sooner). */
  readonly since: number;
  readonly until: number;
  /** Why, e.g. `5 consecutive errors`; absent when the sidecar does not say. */
  readonly reason?: string;
}

/** `kind: "tap"`: requests seen while a tap is open, at most the rate the tap allows. */
export interface TapMessage {
  readonly rows: readonly TapRow[];
  /** Requests not sent because of the rate limit since the previous message. */
  readonly dropped: number;
}

export interface TapRow {
  /** Epoch milliseconds when the request finished. */
  readonly time: number;
  readonly direction: 'inbound' | 'outbound';
  readonly source: string;
  readonly destination: string;
  readonly subset: string;
  readonly method: string;
  readonly authority: string;
  readonly path: string;
  /** HTTP status; 499 when the client went away first. */
  readonly status: number;
  /** grpc-status of gRPC calls, -1 for plain HTTP. */
  readonly grpcStatus: number;
  readonly latencyMs: number;
  readonly traceId: string;
  readonly attempts: number;
}

/** `kind: "spans"`: finished hops, one span each. */
export interface SpansMessage {
  readonly spans: readonly SpanRecord[];
  /** Spans dropped (queue full) since the previous message. */
  readonly dropped: number;
}

export interface SpanRecord {
  readonly traceId: string;
  readonly spanId: string;
  /** '' for a root span. */
  readonly parentSpanId: string;
  readonly name: string;
  /** outbound hops are client spans, inbound hops server spans. */
  readonly kind: 'client' | 'server';
  /** The sidecar's own service and instance. */
  readonly service: string;
  readonly instance: string;
  readonly source: string;
  readonly destination: string;
  readonly subset: string;
  readonly method: string;
  readonly path: string;
  readonly status: number;
  /** grpc-status of gRPC calls, -1 for plain HTTP. */
  readonly grpcStatus: number;
  /** Epoch milliseconds (fractional). */
  readonly startMs: number;
  readonly durationMs: number;
  /** Tries this hop made (a server span's is 1: inbound hops do not retry). */
  readonly attempts: number;
  /**
   * Server spans: which try of the calling sidecar this hop served, from its `x-skein-attempt`
   * (1 the first, 2 the first retry, ...). 0 on client spans and when the caller sent none.
   */
  readonly callerAttempt: number;
  /**
   * 0 on a hop's span. A retried hop also records each retry as a client span of its own
   * under the hop's (OpenTelemetry's `http.request.resend_count`, Envoy's per-try span): its
   * number here, 1 for the first retry, and the server span of the try it sent hangs under it.
   */
  readonly resendCount: number;
  readonly events: readonly SpanEvent[];
  /** The `x-skein-reason` of an answer the hop's sidecar made itself (SPEC §6); absent when it relayed the answer. */
  readonly reason?: string;
}

/**
 * A hop that failed: a 5xx, no answer at all (status 0), a gRPC status other than OK, or an
 * answer its sidecar made itself, whatever the status: a request refused, aborted by a fault
 * or routed nowhere never reached its app, and chaos experiments look for it among errors.
 */
export function spanFailed(s: SpanRecord): boolean {
  return s.status >= 500 || s.status === 0 || s.grpcStatus > 0 || (s.reason !== undefined && s.reason !== '');
}

export interface SpanEvent {
  readonly timeMs: number;
  readonly name: string;
  readonly attributes: Readonly<Record<string, string | number>>;
}

/** `Command {kind: "tap-start"}`: open (or renew) a tap; it closes by itself after `ttlMs`. */
export interface TapStartCommand {
  readonly ttlMs: number;
}
