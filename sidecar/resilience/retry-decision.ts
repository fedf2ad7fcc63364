/**
 * Whether a failed attempt may be retried, and under which reason (the `reason` label of
 * `skein_retries_total`). The policy's `on` list is compiled once into a bit mask, and its
 * status codes into a table of the 200 error statuses, so the per-attempt decision is a few
 * integer tests.
 *
 * Conditions (SPEC §4, Envoy's vocabulary):
 * - `connect-failure`: no connection to the endpoint (the request never left the sidecar);
 * - `reset`: the connection broke before a response arrived;
 * - `gateway-error`: a 502, 503 or 504 response, gRPC status 14 (UNAVAILABLE: SPEC §4 "grpc:
 *   unavailable"), and per-try timeouts;
 * - `5xx`: any 5xx response, per-try timeouts, connect failures and resets;
 * - `unavailable` / `deadline-exceeded`: gRPC status 14 / 4 (per-try timeouts too for the latter);
 * - a status from 400 to 599: a response with that HTTP status, nothing else (a gRPC call's
 *   failures come as HTTP 200, so only its gRPC conditions retry them).
 *
 * Idempotency: POST and PATCH (and so every gRPC call, which is a POST), and every other method
 * not defined idempotent (see isRetryableMethod), are retried only when the request never
 * reached the upstream, unless the route sets `retryNonIdempotent`.
 */
import type { RetryPolicy } from '../../common/config/schema.js';

export type AttemptOutcome = 'connect-failure' | 'reset' | 'timeout' | 'response';
export type RetryReason = 'connect-failure' | 'reset' | 'timeout' | 'gateway-error' | '5xx' | '4xx' | 'unavailable' | 'deadline-exceeded';

const CONNECT_FAILURE = 1;
const RESET = 2;
const GATEWAY_ERROR = 4;
const ANY_5XX = 8;
const UNAVAILABLE = 16;
const DEADLINE_EXCEEDED = 32;

const BITS: Record<Exclude<RetryPolicy['on'][number], number>, number> = {
  'connect-failure': CONNECT_FAILURE,
  reset: RESET,
  'gateway-error': GATEWAY_ERROR,
  '5xx': ANY_5XX,
  unavailable: UNAVAILABLE,
  'deadline-exceeded': DEADLINE_EXCEEDED,
};

/** A compiled `on` list. */
export interface RetryOn {
  readonly mask: number;
  /** 1 at `status - 400` for each status `on` names; null when it names none (the default). */
  readonly statuses: Uint8Array | null;
  /** Some 4xx is retried: the attempt loop looks at a 4xx answer only then. */
  readonly any4xx: boolean;
}

export function compileRetryOn(on: readonly RetryPolicy['on'][number][]): RetryOn {
  let mask = 0;
  let statuses: Uint8Array | null = null;
  let any4xx = false;
  for (const condition of on) {
    if (typeof condition === 'string') {
      mask |= BITS[condition];
      continue;
    }
    (statuses ??= new Uint8Array(200))[condition - 400] = 1;
    if (condition < 500) any4xx = true;
  }
  return { mask, statuses, any4xx };
}

/**
 * True for methods that may be replayed after they reached the upstream: those defined
 * idempotent (RFC 9110 §9.2.2: GET, HEAD, OPTIONS, TRACE, PUT, DELETE) and other safe ones
 * (PROPFIND, REPORT, SEARCH, QUERY). Any other method (POST, PATCH, WebDAV's MKCOL and LOCK,
 * an extension method an HTTP/2 caller may send, a lower-case `get`: methods are
 * case-sensitive) is not known to be idempotent, so is not replayed.
 */
export function isRetryableMethod(method: string, retryNonIdempotent: boolean): boolean {
  if (retryNonIdempotent) return true;
  switch (method) {
    case 'GET':
    case 'HEAD':
    case 'OPTIONS':
    case 'TRACE':
    case 'PUT':
    case 'DELETE':
    case 'PROPFIND':
    case 'REPORT':
    case 'SEARCH':
    case 'QUERY':
      return true;
    default:
      return false;
  }
}

/**
 * The reason to retry this attempt, or undefined when it must not be retried.
 * `status`/`grpcStatus` matter only for `response` (grpcStatus -1 when absent);
 * `replayable` is `isRetryableMethod(...)`; `reachedUpstream` is false only when the
 * request was never sent (connect failure, or an upstream sidecar's own connect failure).
 */
export function retryReason(
  on: RetryOn,
  outcome: AttemptOutcome,
  status: number,
  grpcStatus: number,
  replayable: boolean,
  reachedUpstream: boolean,
): RetryReason | undefined {
  if (!replayable && reachedUpstream) return undefined;
  const mask = on.mask;
  switch (outcome) {
    case 'connect-failure':
      return mask & (CONNECT_FAILURE | ANY_5XX) ? 'connect-failure' : undefined;
    case 'reset':
      return mask & (RESET | ANY_5XX) ? 'reset' : undefined;
    case 'timeout':
      return mask & (GATEWAY_ERROR | ANY_5XX | DEADLINE_EXCEEDED) ? 'timeout' : undefined;
    case 'response':
      if (grpcStatus === 14 && mask & (UNAVAILABLE | GATEWAY_ERROR)) return 'unavailable';
      if (grpcStatus === 4 && mask & DEADLINE_EXCEEDED) return 'deadline-exceeded';
      if (status < 400 || status > 599) return undefined;
      // The reason names what the attempt met, whichever condition let it be retried.
      const listed = on.statuses !== null && on.statuses[status - 400] === 1;
      if (status >= 502 && status <= 504 && (listed || mask & (GATEWAY_ERROR | ANY_5XX))) return 'gateway-error';
      if (status >= 500 && (listed || mask & ANY_5XX)) return '5xx';
      return listed ? '4xx' : undefined;
  }
}
