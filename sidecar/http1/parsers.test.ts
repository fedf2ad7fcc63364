/** The request and response head parsers and the chunked decoder, on good and bad input. */
import { describe, expect, it } from 'vitest';
import { ChunkedDecoder } from './chunked.js';
import { HttpParseError } from './parse-error.js';
import { parseRequestHead } from './request-head.js';
import { parseResponseHead } from './response-head.js';

function refusal(text: string): string {
  try {
    parseRequestHead(text);
  } catch (err) {
    expect(err).toBeInstanceOf(HttpParseError);
    return (err as HttpParseError).code;
  }
  throw new Error(`accepted: ${JSON.stringify(text)}`);
}

describe('parseRequestHead', () => {
  it('reads the request line, headers in order with their spelling, and the framing', () => {
    const head = parseRequestHead('POST /a?b=1 HTTP/1.1\r\nHost: catalog\r\nContent-Length: 12\r\nX-Tab:\t v \t\r\nx-empty:');
    expect(head).toMatchObject({ method: 'POST', target: '/a?b=1', minor: 1, contentLength: 12, chunked: false, keepAlive: true, upgrade: false, expectContinue: false });
    expect(head.rawHeaders).toEqual(['Host', 'catalog', 'Content-Length', '12', 'X-Tab', 'v', 'x-empty', '']);
  });

  it('tells keep-alive by version and Connection, upgrades, 100-continue and chunked bodies', () => {
    expect(parseRequestHead('GET / HTTP/1.0').keepAlive).toBe(false);
    expect(parseRequestHead('GET / HTTP/1.0\r\nConnection: Keep-Alive').keepAlive).toBe(true);
    expect(parseRequestHead('GET / HTTP/1.1\r\nConnection: close').keepAlive).toBe(false);
    expect(parseRequestHead('GET /ws HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket').upgrade).toBe(true);
    expect(parseRequestHead('GET /ws HTTP/1.1\r\nUpgrade: websocket').upgrade).toBe(false);
    expect(parseRequestHead('PUT / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1').expectContinue).toBe(true);
    expect(parseRequestHead('POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked').chunked).toBe(true);
    expect(parseRequestHead('GET / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5').contentLength).toBe(5);
  });

  it('refuses what a lenient parser would have to guess at', () => {
    expect(refusal('THIS IS NOT HTTP')).toBe('HPE_INVALID_CONSTANT');
    expect(refusal('GET /')).toBe('HPE_INVALID_CONSTANT');
    expect(refusal('G(T / HTTP/1.1')).toBe('HPE_INVALID_METHOD');
    expect(refusal('GET /a\x01 HTTP/1.1')).toBe('HPE_INVALID_URL');
    expect(refusal('GET / HTTP/2.0')).toBe('HPE_INVALID_VERSION');
    expect(refusal('GET / HTTP/1.1\r\nBad Header Name: x')).toBe('HPE_INVALID_HEADER_TOKEN');
    expect(refusal('GET / HTTP/1.1\r\nHost : x')).toBe('HPE_INVALID_HEADER_TOKEN');
    expect(refusal('GET / HTTP/1.1\r\nno-colon')).toBe('HPE_INVALID_HEADER_TOKEN');
    expect(refusal('GET / HTTP/1.1\r\nX-A: 1\r\n folded')).toBe('HPE_INVALID_HEADER_TOKEN');
    expect(refusal('GET / HTTP/1.1\r\nX-A: a\x00b')).toBe('HPE_INVALID_HEADER_TOKEN');
    expect(refusal('GET / HTTP/1.1\r\nContent-Length: 1x')).toBe('HPE_INVALID_CONTENT_LENGTH');
    expect(refusal('GET / HTTP/1.1\r\nContent-Length: -1')).toBe('HPE_INVALID_CONTENT_LENGTH');
    expect(refusal('GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2')).toBe('HPE_UNEXPECTED_CONTENT_LENGTH');
    expect(refusal('POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked')).toBe('HPE_UNEXPECTED_CONTENT_LENGTH');
    expect(refusal('POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip')).toBe('HPE_INVALID_TRANSFER_ENCODING');
  });
});

describe('parseResponseHead', () => {
  it('reads status, reason, headers, framing and the keep-alive hint', () => {
    const head = parseResponseHead('HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\nKeep-Alive: timeout=5\r\nSet-Cookie: a=1');
    expect(head).toMatchObject({ status: 404, reason: 'Not Found', contentLength: 3, chunked: false, keepAlive: true, keepAliveMs: 5000 });
    expect(head.rawHeaders).toEqual(['Content-Length', '3', 'Keep-Alive', 'timeout=5', 'Set-Cookie', 'a=1']);
    expect(parseResponseHead('HTTP/1.1 200').reason).toBe('');
    expect(parseResponseHead('HTTP/1.0 200 OK').keepAlive).toBe(false);
    expect(parseResponseHead('HTTP/1.1 200 OK\r\nConnection: close').keepAlive).toBe(false);
    expect(parseResponseHead('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked').chunked).toBe(true);
  });

  it('refuses malformed heads and ambiguous lengths', () => {
    expect(() => parseResponseHead('HTTP/1.1 2000 OK')).toThrow(HttpParseError);
    expect(() => parseResponseHead('ICY 200 OK')).toThrow(HttpParseError);
    expect(() => parseResponseHead('HTTP/1.1 200 OK\r\nBad Name: x')).toThrow(HttpParseError);
    expect(() => parseResponseHead('HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2')).toThrow(HttpParseError);
    expect(() => parseResponseHead('HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked')).toThrow(HttpParseError);
  });
});

describe('ChunkedDecoder', () => {
  const body = Buffer.from('5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\nNEXT');

  it('decodes a body split at every byte, stopping where the next message starts', () => {
    const decoder = new ChunkedDecoder();
    const out: Buffer[] = [];
    let used = 0;
    for (let i = 0; i < body.length && !decoder.done; i++) used += decoder.push(body.subarray(i, i + 1), { onChunk: (c) => out.push(Buffer.from(c)) });
    expect(Buffer.concat(out).toString()).toBe('hello world');
    expect(decoder.done).toBe(true);
    expect(decoder.trailers).toEqual(['Trailer', 'x']);
    expect(body.subarray(used).toString()).toBe('NEXT');
  });

  it('refuses bad sizes, data longer than its size, and bare LF', () => {
    for (const bad of ['zz\r\n', '3\r\nabcd\r\n', '3\nabc\r\n', `${'f'.repeat(13)}\r\n`]) {
      expect(() => new ChunkedDecoder().push(Buffer.from(bad), { onChunk: () => {} })).toThrow(HttpParseError);
    }
  });
});
