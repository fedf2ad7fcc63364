import { describe, expect, it } from 'vitest';
import { appendTraceHeaders, continueTrace, IdSource, type IncomingTraceHeaders, type TraceFields } from './trace-context.js';

const none: IncomingTraceHeaders = { traceparent: undefined, b3: undefined, xB3TraceId: undefined, xB3SpanId: undefined, xB3Sampled: undefined };
const fresh = (): TraceFields => ({ traceId: '', spanId: '', parentSpanId: '', sampled: true });

describe('trace context', () => {
  const ids = new IdSource();

  it('continues a W3C trace with a new span whose parent is the caller', () => {
    const t = fresh();
    continueTrace(t, { ...none, traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' }, ids);
    expect(t).toMatchObject({ traceId: '4bf92f3577b34da6a3ce929d0e0e4736', parentSpanId: '00f067aa0ba902b7', sampled: true });
    expect(t.spanId).toMatch(/^[0-9a-f]{16}$/);
    expect(t.spanId).not.toBe('00f067aa0ba902b7');
    const headers: string[] = [];
    appendTraceHeaders(headers, t);
    expect(headers).toContain(`00-4bf92f3577b34da6a3ce929d0e0e4736-${t.spanId}-01`);
    expect(headers).toContain(`4bf92f3577b34da6a3ce929d0e0e4736-${t.spanId}-1-00f067aa0ba902b7`);
  });

  it('continues B3 (single and multi, 64-bit ids padded) and starts a trace when none came', () => {
    const single = fresh();
    continueTrace(single, { ...none, b3: '80f198ee56343ba8-e457b5a2e4d86bd1-0' }, ids);
    expect(single).toMatchObject({ traceId: '000000000000000080f198ee56343ba8', parentSpanId: 'e457b5a2e4d86bd1', sampled: false });
    const multi = fresh();
    continueTrace(multi, { ...none, xB3TraceId: '463ac35c9f6413ad48485a3953bb6124', xB3SpanId: 'a2fb4a1d1a96d312', xB3Sampled: '1' }, ids);
    expect(multi).toMatchObject({ traceId: '463ac35c9f6413ad48485a3953bb6124', parentSpanId: 'a2fb4a1d1a96d312' });
    const root = fresh();
    continueTrace(root, none, ids);
    expect(root.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(root.parentSpanId).toBe('');
    const ids2 = new Set(Array.from({ length: 2000 }, () => ids.spanId()));
    expect(ids2.size).toBe(2000);
  });
});
