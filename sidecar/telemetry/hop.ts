/**
 * What a finished hop shows telemetry. The Exchange (sidecar/exchange.ts) satisfies this
 * structurally, so the spans and the tap read the fields it already holds instead of
 * copying them on every request.
 */
import type { Direction, EdgeMetrics } from './metrics.js';

export interface RetryEvent {
  /** performance.now() when the retry was decided. */
  readonly at: number;
  readonly reason: string;
  /** The attempt that failed (1-based). */
  readonly attempt: number;
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
  /** grpc-status of a gRPC answer, -1 (or absent) for plain HTTP. */
  readonly grpcStatus?: number;
  readonly retries: readonly RetryEvent[] | null;
  readonly deps: { readonly direction: Direction };
}

/** The path without its query string (queries may carry secrets; they never leave the sidecar). */
export function pathOnly(url: string): string {
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}
