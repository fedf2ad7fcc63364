/**
 * Parses an HTTP/1.x response head (RFC 9112) as strictly as request-head.ts parses requests:
 * a status line `HTTP/1.x NNN reason`, token header names, no control characters in values,
 * no obs-fold, and a body length that can be told without guessing.
 */
import { HttpParseError } from './request-head.js';

export interface ResponseHead {
  readonly status: number;
  readonly reason: string;
  /** Flat `[name, value, ...]` as received. */
  readonly rawHeaders: string[];
  /** -1 when absent. */
  readonly contentLength: number;
  readonly chunked: boolean;
  /** The server keeps the connection open after this response. */
  readonly keepAlive: boolean;
  /** The server's `Keep-Alive: timeout=N` in ms, -1 when it said none. */
  readonly keepAliveMs: number;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
const STATUS_LINE = /^HTTP\/1\.([01]) (\d{3})(?: (.*))?$/;

/** `text` is the head without its final CRLF CRLF. */
export function parseResponseHead(text: string): ResponseHead {
  let eol = text.indexOf('\r\n');
  if (eol < 0) eol = text.length;
  const line = STATUS_LINE.exec(text.slice(0, eol));
  if (line === null) throw new HttpParseError('HPE_INVALID_CONSTANT', 'the status line is not HTTP/1.x NNN reason');
  const minor = Number(line[1]);
  const rawHeaders: string[] = [];
  let contentLength = -1;
  let chunked = false;
  let connection = '';
  let keepAliveMs = -1;
  let pos = eol + 2;
  while (pos < text.length) {
    let end = text.indexOf('\r\n', pos);
    if (end < 0) end = text.length;
    const colon = text.indexOf(':', pos);
    if (colon < 0 || colon >= end) throw new HttpParseError('HPE_INVALID_HEADER_TOKEN', 'a header line without a colon');
    const name = text.slice(pos, colon);
    if (!TOKEN.test(name)) throw new HttpParseError('HPE_INVALID_HEADER_TOKEN', `invalid header name ${JSON.stringify(name.slice(0, 64))}`);
    const value = text.slice(colon + 1, end).trim();
    if (BAD_VALUE.test(value)) throw new HttpParseError('HPE_INVALID_HEADER_TOKEN', `invalid character in header ${name}`);
    rawHeaders.push(name, value);
    pos = end + 2;
    switch (name.length) {
      case 14:
        if (name.toLowerCase() === 'content-length') {
          const n = /^\d{1,15}$/.test(value) ? Number(value) : -2;
          if (n === -2 || (contentLength >= 0 && n !== contentLength)) throw new HttpParseError('HPE_INVALID_CONTENT_LENGTH', 'invalid or conflicting content-length');
          contentLength = n;
        }
        break;
      case 17:
        if (name.toLowerCase() === 'transfer-encoding') chunked = value.toLowerCase().endsWith('chunked');
        break;
      case 10: {
        const lower = name.toLowerCase();
        if (lower === 'connection') connection += `${value.toLowerCase()},`;
        else if (lower === 'keep-alive') {
          const m = /timeout=(\d+)/i.exec(value);
          if (m !== null) keepAliveMs = Number(m[1]) * 1000;
        }
        break;
      }
      default:
        break;
    }
  }
  if (chunked && contentLength >= 0) throw new HttpParseError('HPE_UNEXPECTED_CONTENT_LENGTH', 'both content-length and transfer-encoding');
  const tokens = connection === '' ? [] : connection.split(',').map((t) => t.trim());
  const keepAlive = minor === 1 ? !tokens.includes('close') : tokens.includes('keep-alive');
  return { status: Number(line[2]), reason: line[3] ?? '', rawHeaders, contentLength, chunked, keepAlive, keepAliveMs };
}
