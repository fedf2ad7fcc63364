/**
 * Trace context the apps must carry from the request they serve to the calls they make, so
 * the sidecars can stitch one trace across hops (SPEC §6). Apps only copy these headers; the
 * sidecars create and parent spans.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

const PROPAGATED = ['traceparent', 'tracestate', 'b3', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-flags', 'x-request-id'] as const;

export type TraceHeaders = Readonly<Record<string, string>>;

export function traceHeadersOf(headers: IncomingHttpHeaders): TraceHeaders {
  const out: Record<string, string> = {};
  for (const name of PROPAGATED) {
    const value = headers[name];
    if (typeof value === 'string') out[name] = value;
  }
  return out;
}

/**
 * For the edge (the gateway, which no sidecar fronts): a request that brings no trace starts
 * one here. Otherwise each call made while serving it would start a trace of its own in the
 * gateway's sidecar, and one shop request would show as several unrelated traces.
 */
export function startTraceUnlessPresent(trace: TraceHeaders): TraceHeaders {
  if (trace.traceparent || trace.b3 || trace['x-b3-traceid']) return trace;
  return { ...trace, traceparent: `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01` };
}
