import { describe, expect, it } from 'vitest';
import { appendPeerTraceHeaders, appendTraceHeaders, continueTrace, IdSource, requestIdFor, type IncomingTraceHeaders, type TraceFields } from './trace-context.js';

const none: IncomingTraceHeaders = { traceparent: undefined, b3: undefined, xB3TraceId: undefined, xB3SpanId: undefined, xB3Sampled: undefined };
const fresh = (): TraceFields => ({ traceId: '', spanId: '', parentSpanId: '', sampled: true, debug: false });

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
    // A malformed b3 header (a sampling state other than 0, 1 or d; a bad parent; more parts) is ignored, as B3 asks.
    for (const b3 of ['80f198ee56343ba8-e457b5a2e4d86bd1-x', '80f198ee56343ba8-e457b5a2e4d86bd1-1-nothex', '80f198ee56343ba8-e457b5a2e4d86bd1-1-e457b5a2e4d86bd1-9']) {
      const ignored = fresh();
      continueTrace(ignored, { ...none, b3 }, ids);
      expect(ignored.traceId, b3).not.toBe('000000000000000080f198ee56343ba8');
      expect(ignored.parentSpanId, b3).toBe('');
    }
    const ids2 = new Set(Array.from({ length: 2000 }, () => ids.spanId()));
    expect(ids2.size).toBe(2000);
  });
});

describe('trace context edge cases', () => {
  const ids = new IdSource();
  const valid = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

  it('rejects malformed traceparents and falls back to B3, then to a new trace', () => {
    for (const bad of [
      'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', // version ff
      '00-00000000000000000000000000000000-00f067aa0ba902b7-01', // zero trace id
      '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01', // zero parent
      '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra', // v00 has no extra fields
      '00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01', // not hex
      '00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
      '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01', // W3C ids are lowercase
      '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x', // flags not hex
    ]) {
      const t = fresh();
      continueTrace(t, { ...none, traceparent: bad, tracestate: 'a=b', xB3TraceId: '463ac35c9f6413ad48485a3953bb6124', xB3SpanId: 'a2fb4a1d1a96d312' }, ids);
      expect(t.traceId, bad).toBe('463ac35c9f6413ad48485a3953bb6124');
      expect(t.tracestate, bad).toBeUndefined(); // tracestate goes with a valid traceparent only
    }
    const future = fresh();
    continueTrace(future, { ...none, traceparent: '01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-what-ever' }, ids);
    expect(future).toMatchObject({ traceId: '4bf92f3577b34da6a3ce929d0e0e4736', sampled: false });
  });

  it('forwards tracestate and links every hop to the previous one', () => {
    const hop1 = fresh();
    continueTrace(hop1, { ...none, traceparent: valid, tracestate: 'vendor=abc,other=1' }, ids);
    const out1: string[] = [];
    appendTraceHeaders(out1, hop1);
    const header = (list: string[], name: string) => list[list.indexOf(name) + 1];
    expect(hop1.tracestate).toBe('vendor=abc,other=1');
    expect(out1).not.toContain('tracestate');
    // The next hop sees what this one sent, in each format, and gets this hop as parent.
    for (const incoming of [
      { ...none, traceparent: header(out1, 'traceparent') },
      { ...none, b3: header(out1, 'b3') },
      { ...none, xB3TraceId: header(out1, 'x-b3-traceid'), xB3SpanId: header(out1, 'x-b3-spanid'), xB3Sampled: header(out1, 'x-b3-sampled') },
    ]) {
      const hop2 = fresh();
      continueTrace(hop2, incoming, ids);
      expect(hop2.traceId).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
      expect(hop2.parentSpanId).toBe(hop1.spanId);
      expect(hop2.spanId).not.toBe(hop1.spanId);
    }
    expect(header(out1, 'x-b3-parentspanid')).toBe('00f067aa0ba902b7');
  });

  it('works when the incoming headers and the output are one object (as the pipeline uses it)', () => {
    const both = { ...none, ...fresh(), traceparent: valid, tracestate: 'k=v' };
    continueTrace(both, both, ids);
    expect(both).toMatchObject({ traceId: '4bf92f3577b34da6a3ce929d0e0e4736', parentSpanId: '00f067aa0ba902b7', tracestate: 'k=v' });
    const bad = { ...none, ...fresh(), traceparent: 'garbage', tracestate: 'k=v' };
    continueTrace(bad, bad, ids);
    expect(bad.tracestate).toBeUndefined();
  });

  it('honours a B3 sampling-only header and debug flag', () => {
    const deny = fresh();
    continueTrace(deny, { ...none, b3: '0' }, ids);
    expect(deny.sampled).toBe(false);
    expect(deny.parentSpanId).toBe('');
    const debug = fresh();
    continueTrace(debug, { ...none, b3: '80f198ee56343ba880f198ee56343ba8-e457b5a2e4d86bd1-d' }, ids);
    expect(debug.sampled).toBe(true);
  });

  it('reads x-b3-sampled as 1/0 or true/false, and x-b3-flags 1 (debug) as sampled whatever x-b3-sampled says', () => {
    const ids3 = { xB3TraceId: '463ac35c9f6413ad48485a3953bb6124', xB3SpanId: 'a2fb4a1d1a96d312' };
    const sampled = (incoming: Partial<IncomingTraceHeaders>): boolean => {
      const t = fresh();
      continueTrace(t, { ...none, ...incoming }, ids);
      return t.sampled;
    };
    for (const [value, expected] of [['1', true], ['true', true], ['0', false], ['false', false], ['False', false], [undefined, true]] as const) {
      expect(sampled({ ...ids3, xB3Sampled: value }), `x-b3-sampled: ${value}`).toBe(expected);
      expect(sampled({ xB3Sampled: value }), `x-b3-sampled: ${value}, no trace`).toBe(expected);
    }
    expect(sampled({ ...ids3, xB3Sampled: '0', xB3Flags: '1' })).toBe(true);
    expect(sampled({ ...ids3, xB3Flags: '1' })).toBe(true);
    expect(sampled({ xB3Sampled: '0', xB3Flags: '1' })).toBe(true);
    expect(sampled({ ...ids3, xB3Sampled: '0', xB3Flags: '0' })).toBe(false);
  });

  it('carries B3 debug on as debug to the app and to a peer sidecar, sampled whatever else says so, and every hop after keeps it', () => {
    const header = (list: string[], name: string) => (list.includes(name) ? list[list.indexOf(name) + 1] : undefined);
    const traceId = '463ac35c9f6413ad48485a3953bb6124';
    const parent = 'a2fb4a1d1a96d312';
    for (const incoming of [
      { ...none, xB3TraceId: traceId, xB3SpanId: parent, xB3Sampled: '0', xB3Flags: '1' },
      { ...none, xB3TraceId: traceId, xB3SpanId: parent, xB3Flags: '1' },
      { ...none, b3: `${traceId}-${parent}-d` },
      { ...none, b3: `${traceId}-${parent}-d-00f067aa0ba902b7` },
      { ...none, traceparent: `00-${traceId}-${parent}-00`, xB3Flags: '1' },
    ]) {
      const what = JSON.stringify(incoming);
      const t = fresh();
      continueTrace(t, incoming, ids);
      expect(t, what).toMatchObject({ traceId, parentSpanId: parent, sampled: true, debug: true });
      const app: string[] = [];
      appendTraceHeaders(app, t);
      expect(header(app, 'traceparent'), what).toBe(`00-${traceId}-${t.spanId}-01`);
      expect(header(app, 'b3'), what).toBe(`${traceId}-${t.spanId}-d-${parent}`);
      expect(header(app, 'x-b3-flags'), what).toBe('1');
      // B3: "Debug implies an accept decision, so don't also send the X-B3-Sampled header".
      expect(header(app, 'x-b3-sampled'), what).toBeUndefined();
      const peer: string[] = [];
      appendPeerTraceHeaders(peer, t);
      expect(peer, what).toEqual(['traceparent', `00-${traceId}-${t.spanId}-01`, 'x-b3-flags', '1']);
      // What the next hop reads from each, as an app or as the peer sidecar.
      for (const next of [
        { ...none, traceparent: header(peer, 'traceparent'), xB3Flags: header(peer, 'x-b3-flags') },
        { ...none, b3: header(app, 'b3') },
        { ...none, xB3TraceId: header(app, 'x-b3-traceid'), xB3SpanId: header(app, 'x-b3-spanid'), xB3Flags: header(app, 'x-b3-flags') },
      ]) {
        const hop = fresh();
        continueTrace(hop, next, ids);
        expect(hop, JSON.stringify(next)).toMatchObject({ traceId, parentSpanId: t.spanId, sampled: true, debug: true });
      }
    }
    // Without debug nothing says so, and x-b3-sampled goes on.
    const plain = fresh();
    continueTrace(plain, { ...none, xB3TraceId: traceId, xB3SpanId: parent, xB3Flags: '0' }, ids);
    expect(plain.debug).toBe(false);
    const app: string[] = [];
    appendTraceHeaders(app, plain);
    expect(app).not.toContain('x-b3-flags');
    expect(header(app, 'x-b3-sampled')).toBe('1');
    expect(header(app, 'b3')).toBe(`${traceId}-${plain.spanId}-1-${parent}`);
    const peer: string[] = [];
    appendPeerTraceHeaders(peer, plain);
    expect(peer).toEqual(['traceparent', `00-${traceId}-${plain.spanId}-01`]);
    // A sampling-only `d`, and no ids: a new trace, debug.
    const root = fresh();
    continueTrace(root, { ...none, b3: 'd' }, ids);
    expect(root).toMatchObject({ parentSpanId: '', sampled: true, debug: true });
    // `d` elsewhere than the sampling state is no debug.
    const notDebug = fresh();
    continueTrace(notDebug, { ...none, b3: `${traceId}-${parent}-1-d000000000000000` }, ids);
    expect(notDebug.debug).toBe(false);
  });

  it('forwards a valid traceparent\'s tracestate without its invalid members', () => {
    const t = fresh();
    continueTrace(t, { ...none, traceparent: valid, tracestate: 'ok=1,BAD=2,ok=3,fine=4' }, ids);
    expect(t.tracestate).toBe('ok=1,fine=4');
    continueTrace(t, { ...none, traceparent: valid, tracestate: 'Bad=1' }, ids);
    expect(t.tracestate).toBeUndefined();
    continueTrace(t, { ...none, traceparent: valid }, ids);
    expect(t.tracestate).toBeUndefined();
  });

  it('keeps x-request-id or makes a UUID', () => {
    expect(requestIdFor('abc-123', ids)).toBe('abc-123');
    const made = requestIdFor(undefined, ids);
    expect(made).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(requestIdFor('', ids)).not.toBe('');
    expect(requestIdFor(undefined, ids)).not.toBe(made);
  });
});
