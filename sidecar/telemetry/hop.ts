/**
 * What a finished hop shows telemetry. The Exchange (sidecar/exchange.ts) satisfies this
 * structurally, so the spans and the tap read the fields it already holds instead of
 * copying them on every request.
 */
import type { Direction, EdgeMetrics } from './metrics.js';

export interface RetryEvent {
  /** performance.now() when the retry went out (its backoff over). */
  readonly at: number;
  readonly reason: string;
  /** The attempt that failed (1-based). */
  readonly attempt: number;
  /**
   * The retry's own span, a child of the hop's, whose id its request carried upstream as the
   * parent; '' when its trace is not exported (not sampled, or no span export).
   */
  readonly spanId: string;
  /** performance.now() when this retry's try failed and another retry was granted; NaN while it is the hop's last try, which ends with the hop. */
  endedAt: number;
  /** What this retry's try got when it failed (endedAt): its status, 0 for no answer, and its grpc-status, -1 for none. */
  status: number;
  grpcStatus: number;
}

export interface Hop {
  /** performance.now() when the request arrived. */
  readonly startedAt: number;
  readonly method: string;
  readonly url: string;
  readonly authority: string;
  readonly destination: string;
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string;
  readonly sampled: boolean;
  readonly edge: EdgeMetrics | null;
  readonly attempts: number;
  /** The caller's `x-skein-attempt` as it came (undefined when it sent none); read for inbound hops only. */
  readonly callerAttempt: string | undefined;
  /** grpc-status of a gRPC answer, -1 (or absent) for plain HTTP. */
  readonly grpcStatus?: number;
  readonly retries: readonly RetryEvent[] | null;
  /** The `x-skein-reason` of an answer the sidecar made itself; undefined for a relayed one. */
  readonly reason: string | undefined;
  readonly deps: { readonly direction: Direction };
}

/** An `x-skein-attempt` value a hop accepts from its caller: a try number from 1 to 999. */
export const ATTEMPT_VALUE = /^[1-9]\d{0,2}$/;

/** The caller's try number from its `x-skein-attempt`, 0 when it sent none or something else. */
export function callerAttemptOf(value: string | undefined): number {
  return value !== undefined && ATTEMPT_VALUE.test(value) ? Number(value) : 0;
}

/** The path without its query string (queries may carry secrets; they never leave the sidecar). */
export function pathOnly(url: string): string {
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}
