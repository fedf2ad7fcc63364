/** The request and response head parsers and the chunked decoder, on good and bad input. */
import { describe, expect, it } from 'vitest';
import { ChunkedDecoder } from './chunked.js';
import { HttpParseError } from '../../common/http/parse-error.js';
import { blankLinesAt, checkLineEnds, parseRequestHead, UNSUPPORTED_TRANSFER_CODING } from './request-head.js';
import { isValidAuthority, normaliseTarget } from '../../common/http/request-target.js';
import { parseResponseHead } from './response-head.js';

function refusal(text: string, tunnels = false): string {
  try {
    parseRequestHead(text, tunnels);
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
    expect(parseRequestHead('GET / HTTP/1.1\r\nHost: a\r\nConnection: close').keepAlive).toBe(false);
    // HTTP/1.0 has no transfer codings: one that carries a Transfer-Encoding is served, then closed (RFC 9112 §6.1).
    expect(parseRequestHead('POST / HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked')).toMatchObject({ chunked: true, keepAlive: false });
    expect(parseResponseHead('HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked')).toMatchObject({ chunked: true, keepAlive: false });
    expect(parseRequestHead('GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket').upgrade).toBe(true);
    expect(parseRequestHead('GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket').upgrade).toBe(false);
    expect(parseRequestHead('GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: WebSocket').upgrade).toBe(true);
    // Only WebSocket is honoured: h2c (curl --http2) and other tokens are plain requests.
    expect(parseRequestHead('GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMA').upgrade).toBe(false);
    expect(parseRequestHead('GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: foo/1').upgrade).toBe(false);
    expect(parseRequestHead('PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1').expectContinue).toBe(true);
    expect(parseRequestHead('POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked').chunked).toBe(true);
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
    // Not ending in chunked (RFC 9112 §6.3); chunked twice is malformed (§6.1), not an unsupported coding; in one line or two. Each said as it is.
    for (const [te, why] of [
      ['chunked, gzip', 'does not end in chunked'],
      ['gzip', 'does not end in chunked'],
      ['xchunked', 'does not end in chunked'],
      ['chunked, identity', 'does not end in chunked'],
      ['chunked, chunked', 'chunked more than once'],
      ['chunked\r\nTransfer-Encoding: chunked', 'chunked more than once'],
      ['chunked, gzip, chunked', 'chunked more than once'],
    ]) {
      const text = `POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ${te}`;
      expect(refusal(text), te).toBe('HPE_INVALID_TRANSFER_ENCODING');
      expect(() => parseRequestHead(text), te).toThrow(why);
    }
  });

  it('takes chunked alone as a transfer coding; other codings before it are not implemented (501, RFC 9112 §6.1), not dropped', () => {
    for (const te of ['gzip, chunked', 'GZIP,chunked', 'gzip\r\nTransfer-Encoding: chunked']) {
      expect(refusal(`POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ${te}`), te).toBe(UNSUPPORTED_TRANSFER_CODING);
    }
    // Case and optional whitespace aside, and empty list elements ignored (RFC 9110 §5.6.1).
    for (const te of ['chunked', 'Chunked', ' chunked ', ', chunked', 'chunked,']) {
      expect(parseRequestHead(`POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ${te}`).chunked, te).toBe(true);
    }
  });
});

function targetRefusal(target: string, method = 'GET'): string {
  try {
    normaliseTarget(target, method);
  } catch (err) {
    expect(err).toBeInstanceOf(HttpParseError);
    return (err as HttpParseError).code;
  }
  throw new Error(`accepted: ${JSON.stringify(target)}`);
}

describe('request targets', () => {
  it('takes origin-form, absolute-form and OPTIONS *, printable ASCII only, no fragment', () => {
    expect(normaliseTarget('/a/b?c=d', 'GET')).toBe('/a/b?c=d');
    expect(normaliseTarget('http://catalog:80/x?y', 'GET')).toBe('http://catalog:80/x?y');
    expect(normaliseTarget('HTTPS://catalog', 'GET')).toBe('HTTPS://catalog');
    expect(normaliseTarget('http://[::1]:9000/x', 'GET')).toBe('http://[::1]:9000/x');
    expect(normaliseTarget('*', 'OPTIONS')).toBe('*');
    expect(targetRefusal('*')).toBe('HPE_INVALID_URL');
    expect(targetRefusal('echo')).toBe('HPE_INVALID_URL');
    expect(targetRefusal('catalog:80')).toBe('HPE_INVALID_URL');
    expect(targetRefusal('ftp://catalog/x')).toBe('HPE_INVALID_URL');
    expect(targetRefusal('http:///x')).toBe('HPE_INVALID_URL');
    expect(targetRefusal('http://user@catalog/x')).toBe('HPE_INVALID_URL');
    expect(targetRefusal('http://catalog:abc/x')).toBe('HPE_INVALID_URL');
    expect(targetRefusal('/caf\xc3\xa9')).toBe('HPE_INVALID_URL');
    expect(targetRefusal('/a?q=\xff')).toBe('HPE_INVALID_URL');
    expect(targetRefusal('/a#frag')).toBe('HPE_INVALID_URL');
    expect(targetRefusal('/a\x7f')).toBe('HPE_INVALID_URL');
    // In a parsed head too, with non-ASCII bytes as the server reads them (latin1).
    expect(refusal(`GET ${Buffer.from('/café').toString('latin1')} HTTP/1.1\r\nHost: a`)).toBe('HPE_INVALID_URL');
    expect(refusal('GET echo HTTP/1.1\r\nHost: a')).toBe('HPE_INVALID_URL');
    expect(refusal('CONNECT a:443 HTTP/1.1\r\nHost: a')).toBe('HPE_INVALID_METHOD');
  });

  it('takes a CONNECT to host:port where tunnels are taken, as an upgrade; refuses other targets, a body, and CONNECT elsewhere', () => {
    expect(parseRequestHead('CONNECT catalog:80 HTTP/1.1\r\nHost: catalog:80', true)).toMatchObject({ method: 'CONNECT', target: 'catalog:80', upgrade: true });
    expect(parseRequestHead('CONNECT [::1]:8080 HTTP/1.1\r\nContent-Length: 0', true)).toMatchObject({ target: '[::1]:8080', upgrade: true });
    for (const target of ['/x', 'catalog', 'catalog:', ':80', '[::1]', 'http://catalog/x', 'catalog:99999', 'cat"log:80', '*']) {
      expect(refusal(`CONNECT ${target} HTTP/1.1\r\nHost: a`, true), target).toBe('HPE_INVALID_URL');
    }
    expect(refusal('CONNECT catalog:80 HTTP/1.1\r\nHost: a\r\nContent-Length: 3', true)).toBe('ERR_SKEIN_CONNECT_BODY');
    expect(refusal('CONNECT catalog:80 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked', true)).toBe('ERR_SKEIN_CONNECT_BODY');
    expect(refusal('CONNECT catalog:80 HTTP/1.1\r\nHost: a')).toBe('HPE_INVALID_METHOD');
    // Taking tunnels changes nothing for other requests.
    expect(parseRequestHead('GET /a HTTP/1.1\r\nHost: a', true)).toMatchObject({ method: 'GET', target: '/a', upgrade: false });
  });

  it('passes agreeing Content-Lengths on as one (RFC 9110 §8.6), repeated as lines or as a list', () => {
    const lines = parseRequestHead('POST / HTTP/1.1\r\nContent-Length: 5\r\nHost: a\r\ncontent-length: 5\r\nX-A: 1');
    expect(lines.contentLength).toBe(5);
    expect(lines.rawHeaders).toEqual(['Content-Length', '5', 'Host', 'a', 'X-A', '1']);
    const list = parseRequestHead('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5,5');
    expect(list.contentLength).toBe(5);
    expect(list.rawHeaders).toEqual(['Host', 'a', 'Content-Length', '5']);
    const once = 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5';
    expect(parseRequestHead(once).rawHeaders).toEqual(['Host', 'a', 'Content-Length', '5']);
    expect(refusal('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6')).toBe('HPE_UNEXPECTED_CONTENT_LENGTH');
    expect(refusal('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\nContent-Length: 6')).toBe('HPE_UNEXPECTED_CONTENT_LENGTH');
    expect(refusal('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,,5')).toBe('HPE_INVALID_CONTENT_LENGTH');
    expect(refusal('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,')).toBe('HPE_INVALID_CONTENT_LENGTH');
    expect(refusal('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\nTransfer-Encoding: chunked')).toBe('HPE_UNEXPECTED_CONTENT_LENGTH');
    const response = parseResponseHead('HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3');
    expect(response.rawHeaders).toEqual(['Content-Length', '3']);
  });

  it('wants exactly one valid Host (RFC 9112 §3.2), none only in HTTP/1.0 or with an absolute-form target', () => {
    expect(refusal('GET / HTTP/1.1\r\nHost: catalog\r\nX-A: 1\r\nhost: catalog')).toBe('ERR_SKEIN_INVALID_HOST');
    expect(refusal('GET / HTTP/1.1\r\nHost: catalog\r\nHOST: other')).toBe('ERR_SKEIN_INVALID_HOST');
    expect(refusal('GET / HTTP/1.1\r\nHost: catalog:abc')).toBe('ERR_SKEIN_INVALID_HOST');
    expect(refusal('GET / HTTP/1.1\r\nHost: catalog:99999')).toBe('ERR_SKEIN_INVALID_HOST');
    expect(refusal('GET / HTTP/1.1\r\nHost: user@catalog')).toBe('ERR_SKEIN_INVALID_HOST');
    expect(refusal('GET / HTTP/1.1\r\nHost: a b')).toBe('ERR_SKEIN_INVALID_HOST');
    expect(refusal('GET / HTTP/1.1\r\nX-Host: catalog')).toBe('ERR_SKEIN_INVALID_HOST');
    expect(refusal('OPTIONS * HTTP/1.1')).toBe('ERR_SKEIN_INVALID_HOST');
    expect(refusal('GET http://catalog/ HTTP/1.1\r\nHost: a\r\nHost: a')).toBe('ERR_SKEIN_INVALID_HOST');
    // A valid one is checked once and then remembered; an invalid one never is.
    expect(refusal('GET / HTTP/1.1\r\nHost: catalog:abc')).toBe('ERR_SKEIN_INVALID_HOST');
    for (const host of ['catalog', 'catalog:8080', 'catalog.service.consul', '127.0.0.1:15001', '[::1]:80', '']) {
      expect(parseRequestHead(`GET / HTTP/1.1\r\nHost: ${host}`).rawHeaders, host).toEqual(['Host', host]);
    }
    expect(parseRequestHead('GET / HTTP/1.0').rawHeaders).toEqual([]);
    expect(parseRequestHead('GET http://catalog/x HTTP/1.1').target).toBe('http://catalog/x');
  });

  it('measures the empty lines (CRLF) before a request line, refusing one ended by a bare LF', () => {
    const at = (text: string) => blankLinesAt(Buffer.from(text, 'latin1'));
    expect(at('GET / HTTP/1.1')).toBe(0);
    expect(at('\r\nGET /')).toBe(2);
    expect(at('\r\n\r\n\r\nGET /')).toBe(6);
    expect(at('\r\n\r')).toBe(2);
    expect(at('\r\n')).toBe(2);
    expect(at('')).toBe(0);
    for (const text of ['\nGET /', '\r\n\nGET /', '\r\n\n']) expect(() => at(text), JSON.stringify(text)).toThrow(expect.objectContaining({ code: 'HPE_CR_EXPECTED' }));
  });

  it('checks line ends of a head arriving byte by byte as it would whole, scanning only the new bytes', () => {
    /** The first refusal code of `head` fed one byte at a time, '' when none. */
    const pieceByPiece = (head: string): string => {
      let checked = 0;
      try {
        for (let n = 1; n <= head.length; n++) checked = checkLineEnds(Buffer.from(head.slice(0, n), 'latin1'), checked);
      } catch (err) {
        return (err as HttpParseError).code;
      }
      expect(checked).toBe(head.length);
      return '';
    };
    const whole = (head: string): string => {
      try {
        checkLineEnds(Buffer.from(head, 'latin1'));
      } catch (err) {
        return (err as HttpParseError).code;
      }
      return '';
    };
    const cases: [string, string][] = [
      ['GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n', ''],
      ['GET / HTTP/1.1\r\nHost: a\r', ''],
      ['GET / HTTP/1.1\nHost: a', 'HPE_CR_EXPECTED'],
      ['\nGET /', 'HPE_CR_EXPECTED'],
      ['GET / HTTP/1.1\r\nHost: a\rX: y', 'HPE_LF_EXPECTED'],
      ['GET / HTTP/1.1\r\r\n', 'HPE_LF_EXPECTED'],
    ];
    for (const [head, want] of cases) {
      expect(whole(head), JSON.stringify(head)).toBe(want);
      expect(pieceByPiece(head), JSON.stringify(head)).toBe(want);
    }
  });

  it('returns a clean target as the very same string', () => {
    const clean = '/static/app.min.js?v=1.2&p=../x&e=%2e%2e%2F';
    expect(normaliseTarget(clean, 'GET')).toBe(clean);
    expect(normaliseTarget('/a%20b/%C3%A9.txt', 'GET')).toBe('/a%20b/%C3%A9.txt');
    expect(normaliseTarget('/a.b/c..d/...', 'GET')).toBe('/a.b/c..d/...');
    expect(normaliseTarget('/a;v=1/.b;c/...;/x?q=%00&r=/..;/', 'GET')).toBe('/a;v=1/.b;c/...;/x?q=%00&r=/..;/');
    expect(normaliseTarget('/.well-known/x/..y/.z?/..', 'GET')).toBe('/.well-known/x/..y/.z?/..');
  });

  it('removes dot segments (RFC 3986 §5.2.4) and never touches the query', () => {
    const cases: [string, string][] = [
      ['/public/../private/admin', '/private/admin'],
      ['/a/./b', '/a/b'],
      ['/a/b/..', '/a/'],
      ['/a/b/.', '/a/b/'],
      ['/..', '/'],
      ['/../../etc/passwd', '/etc/passwd'],
      ['/.', '/'],
      ['/a/b/../../..', '/'],
      ['/a/../b?x=/../y', '/b?x=/../y'],
      ['http://catalog/a/../b?q', 'http://catalog/b?q'],
      ['/a/.//b', '/a/b'],
      ['/a/..?q', '/?q'],
      ['/a/.?q', '/a/?q'],
      ['/a/b/..\\c', '/a/c'],
    ];
    for (const [raw, want] of cases) expect(normaliseTarget(raw, 'GET'), raw).toBe(want);
  });

  it('decodes escaped unreserved characters, so %2e%2e is a dot segment; other escapes stay as they came', () => {
    const cases: [string, string][] = [
      ['/public/%2e%2e/private', '/private'],
      ['/public/%2E%2e/%2E/private', '/private'],
      ['/public/.%2e/private', '/private'],
      ['/%61dmin/%7Euser', '/admin/~user'],
      ['/a%20b/%2e%2e/c%3Fd', '/c%3Fd'],
      ['/a%2Fb', '/a%2Fb'],
      ['/a%2fb/c', '/a%2fb/c'],
      ['/pkg/@scope%2Fname/x', '/pkg/@scope%2Fname/x'],
      ['/a\\b\\..\\c', '/a/c'],
    ];
    for (const [raw, want] of cases) expect(normaliseTarget(raw, 'GET'), raw).toBe(want);
  });

  it('merges repeated slashes (as Istio MERGE_SLASHES), before resolving dots; a trailing one stays', () => {
    const cases: [string, string][] = [
      ['//admin/x', '/admin/x'],
      ['/a//b/', '/a/b/'],
      ['/a///b//', '/a/b/'],
      ['//', '/'],
      ['/a/..//b', '/b'],
      ['/a//../b', '/b'],
      ['/a\\/b', '/a/b'],
      ['http://catalog//admin?x=//y', 'http://catalog/admin?x=//y'],
      ['/a%2F%2Fb//c', '/a%2F%2Fb/c'],
    ];
    for (const [raw, want] of cases) expect(normaliseTarget(raw, 'GET'), raw).toBe(want);
  });

  it('refuses paths another reader would resolve differently, and malformed escapes', () => {
    for (const bad of ['/public%2F..%2Fprivate', '/public/..%2Fprivate', '/public%2F../private', '/a%5C..%5Cb', '/a/%2e%2e%2fb', '/a%2Fb/..', '/a/%2e%2e%5c', '/a%zz', '/a%2', '/a%']) {
      expect(targetRefusal(bad), bad).toBe('HPE_INVALID_URL');
    }
  });

  it('refuses dot segments with path parameters (Tomcat, Jetty, Spring drop them, then resolve dots) and %00', () => {
    for (const bad of ['/public/..;/private', '/public/.;/x', '/public/..;jsessionid=1/private', '/public/.;x', '/public/%2e%2e;/private', '/public/.%2E;/private', '/a\\..;\\b', '//..;/x', '/public/..%00/x', '/a%00', '/%00/a', 'http://catalog/a%00b']) {
      expect(targetRefusal(bad), bad).toBe('HPE_INVALID_URL');
    }
  });

  it('checks an authority: host, IPv4, [IPv6], a port of digits up to 65535 (leading zeros too, RFC 3986 `*DIGIT`), no userinfo', () => {
    for (const good of ['catalog', 'catalog:80', 'catalog:0000080', 'catalog:065535', 'catalog:', 'catalog.service.consul:8080', '127.0.0.1:15001', '[::1]', '[::1]:80', 'a-b_c~d%41', '']) {
      expect(isValidAuthority(good), good).toBe(true);
    }
    for (const bad of ['catalog:abc', 'catalog:65536', 'catalog:00065536', 'catalog:123456', 'catalog:99999999999999999999', 'user@catalog', 'cat log', 'catalog/x', '[::1', '[]', '[::g]', 'a:1:2', 'caf\xe9', 'a%zz']) {
      expect(isValidAuthority(bad), bad).toBe(false);
    }
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
    for (const status of ['000', '099', '600', '999']) expect(() => parseResponseHead(`HTTP/1.1 ${status} X`), status).toThrow(/outside 100\.\.599/);
    expect(parseResponseHead('HTTP/1.1 100 Continue').status).toBe(100);
    expect(parseResponseHead('HTTP/1.1 599 Edge').status).toBe(599);
    expect(() => parseResponseHead('HTTP/1.1 200 OK\r\nBad Name: x')).toThrow(HttpParseError);
    expect(() => parseResponseHead('HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2')).toThrow(HttpParseError);
    expect(() => parseResponseHead('HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked')).toThrow(HttpParseError);
  });

  it('reads an answer whose Transfer-Encoding does not end in chunked as one ending with the connection (RFC 9112 §6.3)', () => {
    expect(parseResponseHead('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip')).toMatchObject({ chunked: false, contentLength: -1 });
  });
});

describe('ChunkedDecoder', () => {
  const body = Buffer.from('5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Tail: x\r\n\r\nNEXT');

  it('decodes a body split at every byte, stopping where the next message starts', () => {
    const decoder = new ChunkedDecoder(64, true);
    const out: Buffer[] = [];
    let used = 0;
    for (let i = 0; i < body.length && !decoder.done; i++) used += decoder.push(body.subarray(i, i + 1), { onChunk: (c) => out.push(Buffer.from(c)) });
    expect(Buffer.concat(out).toString()).toBe('hello world');
    expect(decoder.done).toBe(true);
    expect(decoder.trailers).toEqual(['X-Tail', 'x']);
    expect(body.subarray(used).toString()).toBe('NEXT');
  });

  it('refuses bad sizes, data longer than its size, and bare LF', () => {
    for (const bad of ['zz\r\n', '3\r\nabcd\r\n', '3\nabc\r\n', `${'f'.repeat(13)}\r\n`]) {
      expect(() => decode(bad)).toThrow(HttpParseError);
    }
  });

  it('refuses control characters in a size line, after the size or in its extensions; takes padding and extensions', () => {
    for (const bad of ['5;a\x00b\r\n', '5;a\rb\r\n', '5\x0b\r\n', '5\x0c;a=b\r\n', '5\xa0\r\n', '5;a=\x7f\r\n', '1 0\r\n']) {
      expect(() => decode(`${bad}hello\r\n0\r\n\r\n`), JSON.stringify(bad)).toThrow(expect.objectContaining({ code: 'HPE_INVALID_CHUNK_SIZE' }));
    }
    for (const good of ['5', '5  ', '5\t', '5;a=b', '5 ; a="x y";c', '5;', '005']) {
      const out: Buffer[] = [];
      const decoder = new ChunkedDecoder(64, true);
      decoder.push(Buffer.from(`${good}\r\nhello\r\n0\r\n\r\n`, 'latin1'), { onChunk: (c) => out.push(Buffer.from(c)) });
      expect(decoder.done, JSON.stringify(good)).toBe(true);
      expect(Buffer.concat(out).toString(), JSON.stringify(good)).toBe('hello');
    }
  });

  it('checks trailer lines as head lines, and keeps only the fields a trailer may carry', () => {
    for (const bad of ['X-T: a\rInjected: b', 'Bad Name : v', 'X-T: a\x00b', 'X-T: a\x01', 'no-colon', ' folded: x']) {
      expect(() => decode(`0\r\nX-Ok: 1\r\n${bad}\r\n\r\n`), JSON.stringify(bad)).toThrow(HttpParseError);
    }
    const kept = decode('0\r\nX-Checksum:  abc \r\nContent-Length: 99\r\nhost: evil\r\nTransfer-Encoding: chunked\r\nConnection: close\r\nx-two: 2\r\n\r\n');
    expect(kept.trailers).toEqual(['X-Checksum', 'abc', 'x-two', '2']);
    // Not kept (a request's): checked all the same.
    expect(decode('0\r\nX-Checksum: abc\r\n\r\n', false).trailers).toEqual([]);
    expect(() => decode('0\r\nBad Name: x\r\n\r\n', false)).toThrow(HttpParseError);
  });

  it('refuses a trailer section past its byte limit, however short its lines (HPE_HEADER_OVERFLOW)', () => {
    const lines = (n: number): string => 'x:y\r\n'.repeat(n);
    expect(decode(`0\r\n${lines(12)}\r\n`, false, 64).done).toBe(true);
    for (const keep of [true, false]) {
      const decoder = new ChunkedDecoder(64, keep);
      expect(() => decoder.push(Buffer.from(`0\r\n${lines(13)}`), { onChunk: () => {} })).toThrow(expect.objectContaining({ code: 'HPE_HEADER_OVERFLOW' }));
    }
  });
});

/** A decoder (of trailers up to `limit` bytes) after decoding `text`. */
function decode(text: string, keep = true, limit = 1024): ChunkedDecoder {
  const decoder = new ChunkedDecoder(limit, keep);
  decoder.push(Buffer.from(text, 'latin1'), { onChunk: () => {} });
  return decoder;
}
