/**
 * Header lines of an HTTP/1.x head (RFC 9112 §5), shared by the request and response
 * parsers and, for trailer lines, the chunked decoder: token names, values without control
 * characters (optional whitespace around them trimmed), no obs-fold; the fields a trailer
 * may not carry; and the Content-Length rule both parsers apply: digits, and repeats (as
 * lines or a list) only of the same value, passed on as one.
 */
import { HttpParseError } from '../../common/http/parse-error.js';

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
const DIGITS = /^\d{1,15}$/;

export function isToken(text: string): boolean {
  return TOKEN.test(text);
}

/** The header lines of `text` from `pos` to its end, as a flat `[name, value, ...]` list in their order and spelling. */
export function parseHeaderLines(text: string, pos: number): string[] {
  const headers: string[] = [];
  while (pos < text.length) {
    let end = text.indexOf('\r\n', pos);
    if (end < 0) end = text.length;
    pushHeaderLine(text, pos, end, headers);
    pos = end + 2;
  }
  return headers;
}

/** Checks the field line `text[pos, end)` (no CRLF) and adds its name and value to `out`; the rules of a head's lines hold for a chunked body's trailer lines too. */
export function pushHeaderLine(text: string, pos: number, end: number, out: string[]): void {
  const first = text.charCodeAt(pos);
  if (first === 32 || first === 9) throw new HttpParseError('HPE_INVALID_HEADER_TOKEN', 'obsolete line folding in headers');
  const colon = text.indexOf(':', pos);
  if (colon < 0 || colon >= end) throw new HttpParseError('HPE_INVALID_HEADER_TOKEN', 'a header line without a colon');
  const name = text.slice(pos, colon);
  if (!TOKEN.test(name)) throw new HttpParseError('HPE_INVALID_HEADER_TOKEN', `invalid header name ${JSON.stringify(name.slice(0, 64))}`);
  const value = trimOws(text.slice(colon + 1, end));
  if (BAD_VALUE.test(value)) throw new HttpParseError('HPE_INVALID_HEADER_TOKEN', `invalid character in header ${name}`);
  out.push(name, value);
}

/**
 * Fields a trailer section must not carry (RFC 9110 §6.5.1): framing, routing, connection
 * handling, request modifiers, authentication and content format are all decided by the
 * header section before the content, so a recipient that merged them from trailers (an
 * HTTP/2 stack refuses connection-specific ones outright) would be misled. The names Go's
 * net/http refuses as declared trailers, and Upgrade (connection-specific).
 */
const FORBIDDEN_TRAILERS = new Set([
  'authorization', 'cache-control', 'connection', 'content-encoding', 'content-length', 'content-range', 'content-type', 'expect', 'host', 'keep-alive',
  'max-forwards', 'pragma', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'range', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'www-authenticate',
]);

/** `name` (any case) may not be passed on as a trailer field; see FORBIDDEN_TRAILERS. */
export function isForbiddenTrailer(name: string): boolean {
  return FORBIDDEN_TRAILERS.has(name.toLowerCase());
}

/** What the framing and connection handling of a message read from its headers. */
export interface Framing {
  /** -1 when absent. */
  readonly contentLength: number;
  /** The message body is chunked (Transfer-Encoding ends in chunked). */
  readonly chunked: boolean;
  /** Transfer-Encoding is present and is not just `chunked`: it does not end in chunked, or names other codings before it. */
  readonly otherEncoding: boolean;
  /** HTTP/1.1 keeps the connection by default, 1.0 only when asked and without a Transfer-Encoding. */
  readonly keepAlive: boolean;
  /** Connection lists upgrade and an `Upgrade: websocket` header came (the one upgrade Skein honours). */
  readonly upgrade: boolean;
  readonly expectContinue: boolean;
  /** A Keep-Alive header's value, '' when absent. */
  readonly keepAliveHint: string;
  /** Content-Length came more than once, or as a list, all with the same value (see collapseContentLength). */
  readonly lengthRepeated: boolean;
  /** How many Host lines came (requests: RFC 9112 §3.2 wants exactly one), and the last one's value. */
  readonly hosts: number;
  readonly host: string;
}

/** Reads the framing headers of a message; both a Content-Length and a Transfer-Encoding are refused. */
export function framingOf(headers: readonly string[], minor: number): Framing {
  let length = -1;
  let lengthRepeated = false;
  let encoding: string | undefined;
  let connection = '';
  let hasUpgrade = false;
  let expectContinue = false;
  let keepAliveHint = '';
  let hosts = 0;
  let host = '';
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    const value = headers[i + 1]!;
    // Only these names matter here; the length test skips the rest without lower-casing them.
    switch (name.length) {
      case 14:
        if (name.toLowerCase() === 'content-length') {
          if (length >= 0 || value.includes(',')) lengthRepeated = true;
          length = contentLength(value, length);
        }
        break;
      case 17:
        if (name.toLowerCase() === 'transfer-encoding') encoding = encoding === undefined ? value : `${encoding}, ${value}`;
        break;
      case 10: {
        const lower = name.toLowerCase();
        if (lower === 'connection') connection += `${value.toLowerCase()},`;
        else if (lower === 'keep-alive') keepAliveHint = value;
        break;
      }
      case 7:
        // Only WebSocket is honoured (as Envoy's default upgrade_configs): any other token
        // (`h2c`, which `curl --http2` always sends) is served as a plain request.
        if (name.toLowerCase() === 'upgrade' && value.trim().toLowerCase() === 'websocket') hasUpgrade = true;
        break;
      case 4:
        // Every request has one: compared without lower-casing (no allocation).
        if ((name.charCodeAt(0) | 0x20) === 0x68 && (name.charCodeAt(1) | 0x20) === 0x6f && (name.charCodeAt(2) | 0x20) === 0x73 && (name.charCodeAt(3) | 0x20) === 0x74) {
          hosts++;
          host = value;
        }
        break;
      case 6:
        if (name.toLowerCase() === 'expect' && value.toLowerCase() === '100-continue') expectContinue = true;
        break;
      default:
        break;
    }
  }
  let chunked = false;
  let otherEncoding = false;
  if (encoding !== undefined) {
    if (length >= 0) throw new HttpParseError('HPE_UNEXPECTED_CONTENT_LENGTH', 'both content-length and transfer-encoding');
    // RFC 9110 §5.6.1: empty list elements are ignored.
    const codings = encoding.toLowerCase().split(',').map(trimOws).filter((c) => c !== '');
    chunked = codings[codings.length - 1] === 'chunked';
    // RFC 9112 §6.1: chunked is never applied twice, nor before another coding; such a message
    // is malformed, not another coding. One without chunked at all is told apart by its reader.
    const first = codings.indexOf('chunked');
    if (first >= 0 && first < codings.length - 1) throw new HttpParseError('HPE_INVALID_TRANSFER_ENCODING', chunked ? 'transfer-encoding applies chunked more than once' : 'transfer-encoding does not end in chunked');
    otherEncoding = !chunked || codings.length > 1;
  }
  // RFC 9112 §6.1: HTTP/1.0 has no transfer codings, so an HTTP/1.0 message carrying one may
  // be framed otherwise by another reader; it is served, and its connection closed after it.
  const keepAlive = minor === 1 ? !listed(connection, 'close') : encoding === undefined && listed(connection, 'keep-alive');
  const upgrade = hasUpgrade && listed(connection, 'upgrade');
  return { contentLength: length, chunked, otherEncoding, keepAlive, upgrade, expectContinue, keepAliveHint, lengthRepeated, hosts, host };
}

/** `token` is one of the comma-ended list `list` (lower case); split only when it might be. */
function listed(list: string, token: string): boolean {
  return list.includes(token) && list.split(',').some((t) => t.trim() === token);
}

/**
 * A Content-Length value on top of the one seen so far (-1 for none): digits, or the same
 * digits repeated as a list (`5, 5`, RFC 9110 §8.6); repeats must agree.
 */
function contentLength(value: string, seen: number): number {
  let n: number;
  if (DIGITS.test(value)) n = Number(value);
  else {
    if (!value.includes(',')) throw new HttpParseError('HPE_INVALID_CONTENT_LENGTH', 'invalid content-length');
    n = -1;
    for (const part of value.split(',')) {
      const digits = trimOws(part);
      if (!DIGITS.test(digits)) throw new HttpParseError('HPE_INVALID_CONTENT_LENGTH', 'invalid content-length');
      if (n >= 0 && Number(digits) !== n) throw new HttpParseError('HPE_UNEXPECTED_CONTENT_LENGTH', 'conflicting content-length values');
      n = Number(digits);
    }
  }
  if (seen >= 0 && n !== seen) throw new HttpParseError('HPE_UNEXPECTED_CONTENT_LENGTH', 'conflicting content-length headers');
  return n;
}

/**
 * Leaves one Content-Length in `headers`, the first, with the plain value `length`: what a
 * message whose repeated Content-Lengths agree (`framing.lengthRepeated`) is passed on with,
 * since the next reader may refuse the repeat (node:http does).
 */
export function collapseContentLength(headers: string[], length: number): void {
  let kept = false;
  let to = 0;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    if (name.length === 14 && name.toLowerCase() === 'content-length') {
      if (kept) continue;
      kept = true;
      headers[to] = name;
      headers[to + 1] = String(length);
    } else {
      headers[to] = name;
      headers[to + 1] = headers[i + 1]!;
    }
    to += 2;
  }
  headers.length = to;
}

function trimOws(value: string): string {
  let start = 0;
  let end = value.length;
  while (start < end && (value.charCodeAt(start) === 32 || value.charCodeAt(start) === 9)) start++;
  while (end > start && (value.charCodeAt(end - 1) === 32 || value.charCodeAt(end - 1) === 9)) end--;
  return start === 0 && end === value.length ? value : value.slice(start, end);
}
