/**
 * The trace, request id and tracestate headers an exchange reads from its caller (decode) and
 * writes for the next hop (stamp), with stand-ins for the request and response: the rest of
 * the exchange runs in the end-to-end tests.
 */
import { EventEmitter } from 'node:events';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { Exchange, type ExchangeDeps, type ProxyRequest, type ProxyResponse } from './exchange.js';
import { IdSource } from './telemetry/trace-context.js';

const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00';

/** The headers sent on for a request with `rawHeaders`, to an app or to a peer sidecar. */
function stamped(rawHeaders: string[], peerIsSidecar = false): string[] {
  const deps = { direction: 'outbound', peerIsSidecar, ids: new IdSource(), lifecycle: { draining: false, requestStarted() {}, requestEnded() {} }, recorder: null, maxBodyBytes: 0 } as unknown as ExchangeDeps;
  const req = Object.assign(new Readable({ read() {} }), { exchange: null, method: 'GET', url: '/', httpVersionMajor: 1, rawHeaders, headers: {} }) as unknown as ProxyRequest;
  const res = Object.assign(new EventEmitter(), { exchange: null, headersSent: false }) as unknown as ProxyResponse;
  const ex = new Exchange(deps, req, res);
  ex.decodeHeaders();
  ex.stampHeaders();
  return ex.headers;
}

function values(headers: string[], name: string): string[] {
  return headers.filter((_, i) => i % 2 === 1 && headers[i - 1] === name);
}

describe('exchange trace headers', () => {
  it('keeps the first of several x-request-id lines and sends exactly one', () => {
    const out = stamped(['Host', 'backend', 'X-Request-Id', 'first', 'x-request-id', 'second']);
    expect(values(out, 'x-request-id')).toEqual(['first']);
  });

  it('sends B3 debug on as x-b3-flags, without x-b3-sampled, to an app and to a peer sidecar', () => {
    const b3 = ['x-b3-traceid', '463ac35c9f6413ad48485a3953bb6124', 'x-b3-spanid', 'a2fb4a1d1a96d312', 'x-b3-sampled', '0', 'x-b3-flags', '1'];
    const app = stamped(b3);
    expect(values(app, 'x-b3-flags')).toEqual(['1']);
    expect(values(app, 'x-b3-sampled')).toEqual([]);
    expect(values(app, 'traceparent')[0]).toMatch(/-01$/);
    const peer = stamped(b3, true);
    expect(values(peer, 'x-b3-flags')).toEqual(['1']);
    expect(values(peer, 'traceparent')[0]).toMatch(/-01$/);
  });

  it('joins tracestate lines into one and drops their invalid members', () => {
    const out = stamped(['traceparent', TRACEPARENT, 'tracestate', 'a=1,Bad=x', 'tracestate', 'a=2,b=2']);
    expect(values(out, 'tracestate')).toEqual(['a=1,b=2']);
    expect(values(stamped(['traceparent', TRACEPARENT, 'tracestate', 'Bad=x'], true), 'tracestate')).toEqual([]);
  });
});
