/** Response headers on their way to the caller: what hop-by-hop handling keeps. */
import { describe, expect, it } from 'vitest';
import { classify, connectionListed, H, removeHeaders, responseHeaders, transferCodings } from './headers.js';

describe('responseHeaders', () => {
  it('keeps transfer codings other than the final chunked (the client must undo them) and drops the rest of hop-by-hop', () => {
    const out: string[] = [];
    responseHeaders([Buffer.from('Transfer-Encoding'), Buffer.from('gzip, chunked'), 'Connection', 'x-hop', 'x-hop', '1', 'Keep-Alive', 'timeout=5', 'x-app', 'a'], out, 200, 'GET');
    expect(out).toEqual(['Transfer-Encoding', 'gzip', 'x-app', 'a']);
  });

  it('never takes Host, Content-Length or Transfer-Encoding as named by Connection (they route and frame the message)', () => {
    expect(connectionListed('Host, x-hop, Content-Length, TRANSFER-ENCODING, close')).toEqual(['x-hop']);
    const out: string[] = [];
    responseHeaders(['Transfer-Encoding', 'gzip', 'Content-Type', 'text/plain', 'Connection', 'transfer-encoding, content-type'], out, 200, 'GET');
    expect(out).toEqual(['Transfer-Encoding', 'gzip']);
  });

  it('keeps an app\'s trace headers on its answer, every B3 one included (only a request\'s are this hop\'s to write)', () => {
    const trace = ['traceparent', 'tp', 'tracestate', 'ts', 'b3', 'b', 'x-b3-traceid', 't', 'x-b3-spanid', 's', 'x-b3-parentspanid', 'p', 'x-b3-sampled', '1', 'x-b3-flags', '1', 'x-request-id', 'r'];
    const out: string[] = [];
    responseHeaders(trace, out, 200, 'GET');
    expect(out).toEqual(trace);
  });

  it('drops a peer sidecar\'s mark, or an app\'s of that name, however spelt: it belongs to one connection (and a request\'s too)', () => {
    const out: string[] = [];
    responseHeaders(['X-Skein-Sidecar-Made', 'AAAAAAAAAAAAAAAAAAAAAA', 'x-skein-reason', 'upstream-connect-failure'], out, 200, 'GET');
    expect(out).toEqual(['x-skein-reason', 'upstream-connect-failure']);
    expect(classify('x-skein-sidecar-made')).toBe(H.Drop);
  });

  it('keeps a HEAD answer\'s Transfer-Encoding whole, a final chunked included (RFC 9110 §9.3.2: it has no body to frame)', () => {
    const head: string[] = [];
    responseHeaders(['Transfer-Encoding', 'chunked', 'x-app', 'a'], head, 200, 'HEAD');
    expect(head).toEqual(['Transfer-Encoding', 'chunked', 'x-app', 'a']);
    const get: string[] = [];
    responseHeaders(['Transfer-Encoding', 'chunked', 'x-app', 'a'], get, 200, 'GET');
    expect(get).toEqual(['x-app', 'a']);
  });

  it('passes RFC 9209\'s Proxy-Status on, however spelt, and drops the proxy authentication fields and other proxy-* ones', () => {
    const out: string[] = [];
    responseHeaders(['Proxy-Status', 'upstream; error=http_response_timeout', 'Proxy-Authenticate', 'Basic', 'Proxy-Authentication-Info', 'x', 'Proxy-Connection', 'close', 'Proxy-Other', 'y'], out, 504, 'GET');
    expect(out).toEqual(['Proxy-Status', 'upstream; error=http_response_timeout']);
    expect(classify('PROXY-STATUS')).toBe(H.Pass);
    expect(classify('Proxy-Authorization')).toBe(H.Drop);
  });

  it('drops a 204\'s Content-Length (RFC 9110 §8.6) and keeps a 304\'s', () => {
    const noContent: string[] = [];
    expect(responseHeaders(['Content-Length', '5', 'x-app', 'a'], noContent, 204, 'GET')).toBe(-1);
    expect(noContent).toEqual(['x-app', 'a']);
    const notModified: string[] = [];
    expect(responseHeaders(['Content-Length', '5'], notModified, 304, 'GET')).toBe(5);
    expect(notModified).toEqual(['Content-Length', '5']);
  });

  it('reads a Transfer-Encoding value without its final chunked, case and spacing aside', () => {
    expect(transferCodings('chunked')).toBe('');
    expect(transferCodings('Chunked')).toBe('');
    expect(transferCodings(' chunked , ')).toBe('');
    expect(transferCodings('gzip, chunked')).toBe('gzip');
    expect(transferCodings('gzip,deflate ,CHUNKED')).toBe('gzip, deflate');
    // Not ending in chunked (a body read to the close): every coding stays.
    expect(transferCodings('gzip')).toBe('gzip');
  });
});

describe('removeHeaders', () => {
  it('drops the listed names, any case, keeping the order of the rest', () => {
    const headers = ['Host', 'a', 'X-Hop', '1', 'x-keep', '2', 'x-hop', '3'];
    removeHeaders(headers, ['x-hop']);
    expect(headers).toEqual(['Host', 'a', 'x-keep', '2']);
  });

  it('takes time in proportion to fields plus names, not their product: a head may hold thousands of each', () => {
    // 30 000 of each is past any 64 KiB head; names × fields (9·10^8 searches) took seconds.
    const names = Array.from({ length: 30_000 }, (_, i) => `c${i}`);
    const headers = Array.from({ length: 30_000 }, (_, i) => [`h${i}`, 'v']).flat();
    headers.push('C7', 'listed');
    const started = performance.now();
    removeHeaders(headers, names);
    expect(performance.now() - started).toBeLessThan(500);
    expect(headers).toHaveLength(60_000);
  });
});
