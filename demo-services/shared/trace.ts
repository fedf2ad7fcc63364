/**
 * Trace context the apps must carry from the request they serve to the calls they make, so
 * the sidecars can stitch one trace across hops (SPEC §6). Apps only copy these headers; the
 * sidecars create and parent spans.
 */
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
