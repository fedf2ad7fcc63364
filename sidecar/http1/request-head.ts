/**
 * Parses an HTTP/1.x request head (RFC 9112) strictly: anything a lenient parser would have
 * to guess at is refused, since a proxy that reads a message differently from the app behind
 * it invites request smuggling. Refused: a malformed request line, versions other than 1.0
 * and 1.1, header names that are not tokens, control characters in values, obs-fold, both
 * Content-Length and Transfer-Encoding, conflicting Content-Lengths, and a Transfer-Encoding
 * that does not end in chunked. Error codes follow llhttp's (what node:http reported).
 */

export class HttpParseError extends Error {
  override name = 'HttpParseError';
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface RequestHead {
  readonly method: string;
  readonly target: string;
  /** 0 for HTTP/1.0, 1 for HTTP/1.1. */
  readonly minor: number;
  /** Flat `[name, value, ...]` as received. */
  readonly rawHeaders: string[];
  /** -1 when absent. */
  readonly contentLength: number;
  readonly chunked: boolean;
  readonly keepAlive: boolean;
  /** Connection: upgrade with an Upgrade header (WebSocket). */
  readonly upgrade: boolean;
  readonly expectContinue: boolean;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const TARGET = /^[\x21-\x7e\x80-\xff]+$/;
const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
const DIGITS = /^\d{1,15}$/;

/** `text` is the head without its final CRLF CRLF. */
export function parseRequestHead(text: string): RequestHead {
  let eol = text.indexOf('\r\n');
  if (eol < 0) eol = text.length;
  const line = text.slice(0, eol);
  const sp1 = line.indexOf(' ');
  const sp2 = sp1 < 0 ? -1 : line.indexOf(' ', sp1 + 1);
  if (sp1 <= 0 || sp2 < 0 || line.indexOf(' ', sp2 + 1) >= 0) throw new HttpParseError('HPE_INVALID_CONSTANT', 'the request line is not METHOD target HTTP/1.x');
  const method = line.slice(0, sp1);
  if (!TOKEN.test(method)) throw new HttpParseError('HPE_INVALID_METHOD', `invalid method ${JSON.stringify(method)}`);
  const target = line.slice(sp1 + 1, sp2);
  if (!TARGET.test(target)) throw new HttpParseError('HPE_INVALID_URL', 'invalid request target');
  const version = line.slice(sp2 + 1);
  const minor = version === 'HTTP/1.1' ? 1 : version === 'HTTP/1.0' ? 0 : -1;
  if (minor < 0) throw new HttpParseError('HPE_INVALID_VERSION', `unsupported version ${JSON.stringify(version.slice(0, 20))}`);

  const rawHeaders: string[] = [];
  let contentLength = -1;
  let transferEncoding: string | undefined;
  let connection = '';
  let hasUpgrade = false;
  let expectContinue = false;
  let pos = eol + 2;
  while (pos < text.length) {
    let end = text.indexOf('\r\n', pos);
    if (end < 0) end = text.length;
    const first = text.charCodeAt(pos);
    if (first === 32 || first === 9) throw new HttpParseError('HPE_INVALID_HEADER_TOKEN', 'obsolete line folding in headers');
    const colon = text.indexOf(':', pos);
    if (colon < 0 || colon >= end) throw new HttpParseError('HPE_INVALID_HEADER_TOKEN', 'a header line without a colon');
    const name = text.slice(pos, colon);
    if (!TOKEN.test(name)) throw new HttpParseError('HPE_INVALID_HEADER_TOKEN', `invalid header name ${JSON.stringify(name.slice(0, 64))}`);
    const value = trimOws(text.slice(colon + 1, end));
    if (BAD_VALUE.test(value)) throw new HttpParseError('HPE_INVALID_HEADER_TOKEN', `invalid character in header ${name}`);
    rawHeaders.push(name, value);
    pos = end + 2;
    // Names the framing depends on; the rest pass untouched.
    switch (name.length) {
      case 14:
        if (name.toLowerCase() === 'content-length') {
          if (!DIGITS.test(value)) throw new HttpParseError('HPE_INVALID_CONTENT_LENGTH', 'invalid content-length');
          const n = Number(value);
          if (contentLength >= 0 && n !== contentLength) throw new HttpParseError('HPE_UNEXPECTED_CONTENT_LENGTH', 'conflicting content-length headers');
          contentLength = n;
        }
        break;
      case 17:
        if (name.toLowerCase() === 'transfer-encoding') transferEncoding = transferEncoding === undefined ? value : `${transferEncoding}, ${value}`;
        break;
      case 10:
        if (name.toLowerCase() === 'connection') connection = connection === '' ? value.toLowerCase() : `${connection}, ${value.toLowerCase()}`;
        break;
      case 7:
        if (name.toLowerCase() === 'upgrade') hasUpgrade = true;
        break;
      case 6:
        if (name.toLowerCase() === 'expect' && value.toLowerCase() === '100-continue') expectContinue = true;
        break;
      default:
        break;
    }
  }

  let chunked = false;
  if (transferEncoding !== undefined) {
    if (contentLength >= 0) throw new HttpParseError('HPE_UNEXPECTED_CONTENT_LENGTH', 'both content-length and transfer-encoding');
    const codings = transferEncoding.toLowerCase().split(',');
    if (codings[codings.length - 1]!.trim() !== 'chunked') throw new HttpParseError('HPE_INVALID_TRANSFER_ENCODING', 'transfer-encoding does not end in chunked');
    chunked = true;
  }
  const tokens = connection === '' ? undefined : connection.split(',').map((t) => t.trim());
  const keepAlive = minor === 1 ? !tokens?.includes('close') : tokens?.includes('keep-alive') === true;
  const upgrade = hasUpgrade && tokens?.includes('upgrade') === true;
  return { method, target, minor, rawHeaders, contentLength, chunked, keepAlive, upgrade, expectContinue };
}

function trimOws(value: string): string {
  let start = 0;
  let end = value.length;
  while (start < end && (value.charCodeAt(start) === 32 || value.charCodeAt(start) === 9)) start++;
  while (end > start && (value.charCodeAt(end - 1) === 32 || value.charCodeAt(end - 1) === 9)) end--;
  return start === 0 && end === value.length ? value : value.slice(start, end);
}
