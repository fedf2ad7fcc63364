/**
 * Parses an HTTP/1.x response head (RFC 9112) as strictly as request-head.ts parses requests:
 * a status line `HTTP/1.x NNN reason` with a status from 100 to 599, token header names, no
 * control characters in values, no obs-fold, and a body length that can be told without
 * guessing.
 */
import { collapseContentLength, framingOf, parseHeaderLines } from './header-lines.js';
import { HttpParseError } from '../../common/http/parse-error.js';
import { checkLineEnds } from './request-head.js';

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


/** The last Keep-Alive value seen and its timeout: an app repeats the same one on every answer. */
let lastKeepAlive = '';
let lastKeepAliveMs = -1;

function keepAliveTimeoutMs(value: string): number {
  if (value !== lastKeepAlive) {
    const m = /timeout=(\d+)/i.exec(value);
    lastKeepAlive = value;
    lastKeepAliveMs = m === null ? -1 : Number(m[1]) * 1000;
  }
  return lastKeepAliveMs;
}

function isDigit(code: number): boolean {
  return code >= 48 && code <= 57;
}

/** `text` is the head without its final CRLF CRLF. */
export function parseResponseHead(text: string): ResponseHead {
  let eol = text.indexOf('\r\n');
  if (eol < 0) eol = text.length;
  const minor = text.charCodeAt(7) - 48;
  if (!text.startsWith('HTTP/1.') || !(minor === 0 || minor === 1) || text.charCodeAt(8) !== 32) throw notStatusLine();
  return parseStatusAndHeaders(text, 9, eol, minor);
}

/**
 * The rest of a response head from its status code at `at` (`NNN reason` up to `eol`, then
 * header lines): all of parseResponseHead's checks after the version. A peer sidecar's mux
 * response head, whose first line is `NNN reason`, is held to them too (sidecar/mux/heads.ts).
 */
export function parseStatusAndHeaders(text: string, at: number, eol: number, minor: number): ResponseHead {
  // `NNN` and an optional ` reason`, checked by hand: a regular expression was half the cost of a head.
  if (!isDigit(text.charCodeAt(at)) || !isDigit(text.charCodeAt(at + 1)) || !isDigit(text.charCodeAt(at + 2)) || (eol !== at + 3 && text.charCodeAt(at + 3) !== 32)) throw notStatusLine();
  const status = Number(text.slice(at, at + 3));
  // RFC 9110 §15: codes outside 100..599 are invalid; passed on, no client could tell what they mean.
  if (status < 100 || status > 599) throw new HttpParseError('HPE_INVALID_STATUS', `status ${status} is outside 100..599`);
  const reason = eol > at + 4 ? text.slice(at + 4, eol) : '';
  // It is written to the caller as it came: no bare CR or LF may ride along.
  if (/[\r\n\0]/.test(reason)) throw new HttpParseError('HPE_INVALID_CONSTANT', 'control characters in the reason phrase');
  const rawHeaders = parseHeaderLines(text, eol + 2);
  const { contentLength, chunked, keepAlive, keepAliveHint, lengthRepeated } = framingOf(rawHeaders, minor);
  if (lengthRepeated) collapseContentLength(rawHeaders, contentLength);
  const keepAliveMs = keepAliveHint === '' ? -1 : keepAliveTimeoutMs(keepAliveHint);
  return { status, reason, rawHeaders, contentLength, chunked, keepAlive, keepAliveMs };
}

const HTTP_1 = Buffer.from('HTTP/1.', 'latin1');

/**
 * For an answer whose head has not all come: refuses one that is not HTTP (its first bytes
 * are not `HTTP/1.`: an SSH banner, say) or has a line ended by a bare LF or CR, which would
 * otherwise leave the client waiting for CRLF CRLF until its timeout, or for ever without
 * one. `checked` and the result as for checkLineEnds.
 */
export function checkPartialResponse(buf: Buffer, checked: number): number {
  const n = Math.min(buf.length, HTTP_1.length);
  if (checked < n && buf.compare(HTTP_1, 0, n, 0, n) !== 0) throw notStatusLine();
  return checkLineEnds(buf, checked);
}

function notStatusLine(): HttpParseError {
  return new HttpParseError('HPE_INVALID_CONSTANT', 'the status line is not HTTP/1.x NNN reason');
}
