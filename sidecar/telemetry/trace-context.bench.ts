/** `npx vitest bench --run sidecar/telemetry/trace-context.bench.ts`: per-hop trace work (1 op = 1000 hops). */
import { bench, describe } from 'vitest';
import { appendTraceHeaders, continueTrace, IdSource, requestIdFor, type IncomingTraceHeaders, type TraceFields } from './trace-context.js';

const ids = new IdSource();
const none: IncomingTraceHeaders = { traceparent: undefined, b3: undefined, xB3TraceId: undefined, xB3SpanId: undefined, xB3Sampled: undefined };
const w3c: IncomingTraceHeaders = { ...none, traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' };
// Two vendors' entries, as a traced request commonly carries: checked member by member, passed on as it came.
const w3cState: IncomingTraceHeaders = { ...w3c, tracestate: 'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE' };
const out: TraceFields = { traceId: '', spanId: '', parentSpanId: '', sampled: true, debug: false, tracestate: undefined };

describe('trace context per hop (x1000)', () => {
  bench('continue a W3C trace + append headers + keep x-request-id', () => {
    for (let i = 0; i < 1000; i++) {
      const headers: string[] = [];
      continueTrace(out, w3c, ids);
      appendTraceHeaders(headers, out);
      headers.push('x-request-id', requestIdFor('abc', ids));
    }
  });
  bench('the same with a valid two-member tracestate', () => {
    for (let i = 0; i < 1000; i++) {
      const headers: string[] = [];
      continueTrace(out, w3cState, ids);
      appendTraceHeaders(headers, out);
      headers.push('x-request-id', requestIdFor('abc', ids));
    }
  });
  bench('start a trace + append headers + generate x-request-id', () => {
    for (let i = 0; i < 1000; i++) {
      const headers: string[] = [];
      continueTrace(out, none, ids);
      appendTraceHeaders(headers, out);
      headers.push('x-request-id', requestIdFor(undefined, ids));
    }
  });
});
