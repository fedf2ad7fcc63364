/** `npx vitest bench --run sidecar/telemetry/trace-context.bench.ts`: per-hop trace work (1 op = 1000 hops). */
import { bench, describe } from 'vitest';
import { appendTraceHeaders, continueTrace, IdSource, requestIdFor, type IncomingTraceHeaders, type TraceFields } from './trace-context.js';

const ids = new IdSource();
const none: IncomingTraceHeaders = { traceparent: undefined, b3: undefined, xB3TraceId: undefined, xB3SpanId: undefined, xB3Sampled: undefined };
const w3c: IncomingTraceHeaders = { ...none, traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' };
// Two vendors' entries, as a traced request commonly carries: checked member by member, passed on as it came.
const w3cState: IncomingTraceHeaders = { ...w3c, tracestate: 'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE' };
const out: TraceFields = { traceId: '', spanId: '', parentSpanId: '', sampled: true, debug: false, tracestate: undefined };

/** 1000 hops of a request with `incoming` trace headers and `requestId` (undefined: one is made). */
function hops(incoming: IncomingTraceHeaders, requestId: string | undefined): void {
  for (let i = 0; i < 1000; i++) {
    const headers: string[] = [];
    continueTrace(out, incoming, ids);
    appendTraceHeaders(headers, out);
    headers.push('x-request-id', requestIdFor(requestId, ids));
  }
}

describe('trace context per hop (x1000)', () => {
  bench('continue a W3C trace + append headers + keep x-request-id', () => hops(w3c, 'abc'));
  bench('the same with a valid two-member tracestate', () => hops(w3cState, 'abc'));
  bench('start a trace + append headers + generate x-request-id', () => hops(none, undefined));
});
