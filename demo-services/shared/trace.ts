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
  if (trace.traceparent !== undefined && !isTraceparent(trace.traceparent)) {
    // W3C trace context §3.2.2: an invalid traceparent is ignored, and its tracestate with it.
    // Passed on, every sidecar hop would ignore it too and each call would start a trace of
    // its own; answered as the traceresponse, it would name no trace.
    const { traceparent: _invalid, tracestate: _state, ...rest } = trace;
    trace = rest;
  }
  if (trace.traceparent || trace.b3 || trace['x-b3-traceid']) return trace;
  return { ...trace, traceparent: `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01` };
}

/**
 * `version-traceid-parentid-flags` in lowercase hex with non-zero ids; version ff is invalid,
 * version 00 is exactly 55 characters, a later version may append `-` and more fields.
 */
export function isTraceparent(value: string): boolean {
  const m = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}(-.*)?$/.exec(value);
  if (!m || m[1] === 'ff' || (m[1] === '00' && m[4] !== undefined)) return false;
  return !/^0+$/.test(m[2]!) && !/^0+$/.test(m[3]!);
}
