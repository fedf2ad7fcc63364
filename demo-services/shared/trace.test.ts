import { describe, expect, it } from 'vitest';
import { isTraceparent, startTraceUnlessPresent } from './trace.js';

const VALID = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

describe('startTraceUnlessPresent (the gateway, the edge)', () => {
  it('keeps a valid incoming trace, W3C or B3', () => {
    expect(startTraceUnlessPresent({ traceparent: VALID, tracestate: 'a=1' })).toEqual({ traceparent: VALID, tracestate: 'a=1' });
    expect(startTraceUnlessPresent({ b3: '80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1' })).toEqual({ b3: '80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1' });
  });

  it('starts a trace for a request without one', () => {
    const started = startTraceUnlessPresent({ 'x-request-id': 'r1' });
    expect(isTraceparent(started.traceparent!)).toBe(true);
    expect(started['x-request-id']).toBe('r1');
  });

  it('starts a new trace in place of an invalid traceparent, dropping its tracestate', () => {
    for (const bad of ['garbage', '00-zzzz', `00-${'0'.repeat(32)}-00f067aa0ba902b7-01`, `00-4bf92f3577b34da6a3ce929d0e0e4736-${'0'.repeat(16)}-01`, VALID.toUpperCase(), `ff${VALID.slice(2)}`, `${VALID}-extra`]) {
      const trace = startTraceUnlessPresent({ traceparent: bad, tracestate: 'a=1' });
      expect(trace.traceparent, bad).not.toBe(bad);
      expect(isTraceparent(trace.traceparent!), bad).toBe(true);
      expect(trace.tracestate, bad).toBeUndefined();
    }
  });

  it('keeps B3 that came with an invalid traceparent', () => {
    expect(startTraceUnlessPresent({ traceparent: 'garbage', 'x-b3-traceid': '80f198ee56343ba864fe8b2a57d3eff7' })).toEqual({ 'x-b3-traceid': '80f198ee56343ba864fe8b2a57d3eff7' });
  });

  it('accepts a later version with more fields', () => {
    expect(isTraceparent(`01${VALID.slice(2)}-what-comes-next`)).toBe(true);
  });
});
