import type { BucketLimit } from './config/schema.js';

/** RFC 9209 §2.3's proxy error types (the IANA "HTTP Proxy Error Types" registry). */
export type ProxyErrorType =
  | 'dns_timeout' | 'dns_error' | 'destination_not_found' | 'destination_unavailable' | 'destination_ip_prohibited'
  | 'destination_ip_unroutable' | 'connection_refused' | 'connection_terminated' | 'connection_timeout'
  | 'connection_read_timeout' | 'connection_write_timeout' | 'connection_limit_reached' | 'tls_protocol_error'
  | 'tls_certificate_error' | 'tls_alert_received' | 'http_request_error' | 'http_request_denied'
  | 'http_response_incomplete' | 'http_response_header_section_size' | 'http_response_header_size'
  | 'http_response_body_size' | 'http_response_trailer_section_size' | 'http_response_trailer_size'
  | 'http_response_transfer_coding' | 'http_response_content_coding' | 'http_response_timeout' | 'http_upgrade_failed'
  | 'http_protocol_error' | 'proxy_internal_response' | 'proxy_internal_error' | 'proxy_configuration_error'
  | 'proxy_loop_detected';

/** What every reason must say: a row that leaves one out does not compile. */
interface ReasonEntry {
  readonly status: number;
  readonly grpc: number;
  readonly delivered: 'never' | 'maybe';
  readonly proxyError: ProxyErrorType;
  readonly message: string;
}

/**
 * The catalogue of reasons a sidecar answers a request itself (SPEC §6 `x-skein-reason`),
 * with the HTTP status and gRPC status each maps to. Every sidecar-made response comes
 * from one of these; the test in errors.test.ts keeps the README table in step.
 * `delivered` tells a caller whether it may send a request again without the app seeing it
 * twice: `never` for the reasons a sidecar gives only when its try was not sent (nowhere to
 * send it, a breaker, an intention or an injected abort that stopped it, a connection that
 * could not be made); a request it had tried before and may have delivered is an idempotent
 * one (only those are retried after a try went out), which is safe to send again anyway.
 * `maybe` after a timeout, a reset once connected, or a request refused part way through its body.
 * `proxyError` is the RFC 9209 error type the answer's `Proxy-Status` entry names (sidecar/stages/
 * reply.ts), as close to Envoy's choice for the same case as the registry allows: retries-exhausted
 * is Envoy's URX, `destination_unavailable`; an injected abort never tried the next hop,
 * `proxy_internal_response`; a caller's malformed or oversized request, `http_request_error`.
 */
export const REASONS = {
  'no-route': { status: 404, grpc: 12 /* UNIMPLEMENTED */, delivered: 'never', proxyError: 'destination_not_found', message: 'no route to the requested service' },
  'no-healthy-endpoints': { status: 503, grpc: 14 /* UNAVAILABLE */, delivered: 'never', proxyError: 'destination_unavailable', message: 'no healthy endpoint for the destination' },
  'circuit-open': { status: 503, grpc: 14, delivered: 'never', proxyError: 'destination_unavailable', message: 'circuit breaker is open for the destination' },
  timeout: { status: 504, grpc: 4 /* DEADLINE_EXCEEDED */, delivered: 'maybe', proxyError: 'http_response_timeout', message: 'request timed out' },
  'retries-exhausted': { status: 503, grpc: 14, delivered: 'maybe', proxyError: 'destination_unavailable', message: 'all attempts failed' },
  denied: { status: 403, grpc: 7 /* PERMISSION_DENIED */, delivered: 'never', proxyError: 'http_request_denied', message: 'denied by intentions' },
  'fault-injected': { status: 503, grpc: 14, delivered: 'never', proxyError: 'proxy_internal_response', message: 'fault injected by route config' },
  'upstream-connect-failure': { status: 503, grpc: 14, delivered: 'never', proxyError: 'connection_refused', message: 'could not connect to the upstream' },
  'bad-request': { status: 400, grpc: 13 /* INTERNAL */, delivered: 'maybe', proxyError: 'http_request_error', message: 'malformed request' },
  // RESOURCE_EXHAUSTED, as Envoy's local_ratelimit with rate_limited_as_resource_exhausted and
  // Google's API guidelines map 429: its default UNAVAILABLE is what callers retry (`on:
  // unavailable`, gateway-error) and breakers and outlier detection count as the endpoint failing.
  // RFC 9209's registry has no type for a rate: the intermediary refused the request.
  'rate-limited': { status: 429, grpc: 8 /* RESOURCE_EXHAUSTED */, delivered: 'never', proxyError: 'http_request_denied', message: 'over the rate limit of the destination' },
} as const satisfies Record<string, ReasonEntry>;

export type Reason = keyof typeof REASONS;

/** An error that ends a request with a sidecar-made response. */
export class SkeinError extends Error {
  readonly reason: Reason;
  readonly status: number;

  constructor(reason: Reason, message?: string, status?: number) {
    super(message ?? REASONS[reason].message);
    this.name = 'SkeinError';
    this.reason = reason;
    this.status = status ?? REASONS[reason].status;
  }

  get grpcStatus(): number {
    return REASONS[this.reason].grpc;
  }

  /** Header lines (name, value, …) the sidecar-made answer carries beside `x-skein-reason`. */
  responseHeaders(): readonly string[] {
    return NO_HEADERS;
  }
}

/** No header lines beyond x-skein-reason's (and Proxy-Status): most reasons' `responseHeaders`, and a reply's default. */
export const NO_HEADERS: readonly string[] = [];

/** Why a request was refused by its destination's rate limit (sidecar/resilience/rate-limit.ts). */
export interface RateLimitRefusal {
  /** The bucket that had no token. */
  readonly limit: BucketLimit;
  /** The caller whose own bucket it is; undefined for the total's or a route's. */
  readonly source: string | undefined;
  /** The index in `rateLimit.routes` of the route whose bucket it is; undefined for the others. */
  readonly route: number | undefined;
  /** Until that bucket has a token again. */
  readonly waitMs: number;
}

/**
 * An inbound request over its destination's rate limit (`rateLimit` of its policy): answered
 * 429 with `Retry-After`, the whole seconds until the instance admits one again (at least 1).
 */
export class RateLimitedError extends SkeinError {
  readonly retryAfterSeconds: number;

  constructor(service: string, { limit, source, route, waitMs }: RateLimitRefusal) {
    const seconds = Math.max(1, Math.ceil(waitMs / 1000));
    const whose = source !== undefined ? ` from ${source}` : route !== undefined ? ` on rateLimit.routes[${route}]` : '';
    super('rate-limited', `${service} admits ${limit.requestsPerSecond} requests per second per instance${whose} (burst ${limit.burst}): retry after ${seconds}s`);
    this.retryAfterSeconds = seconds;
  }

  override responseHeaders(): readonly string[] {
    return ['retry-after', String(this.retryAfterSeconds)];
  }
}

/**
 * The caller's request cannot go on as it is (a body malformed or past the limit, a head the
 * next hop's protocol cannot carry): answered `status` with `x-skein-reason: bad-request`, and
 * never counted against the endpoint the attempt was for.
 */
export class CallerFaultError extends SkeinError {
  constructor(message: string, status: number) {
    super('bad-request', message, status);
  }
}

export function isSkeinError(err: unknown): err is SkeinError {
  return err instanceof SkeinError;
}
