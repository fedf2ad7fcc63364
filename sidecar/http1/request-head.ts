/**
 * Parses an HTTP/1.x request head (RFC 9112) strictly: anything a lenient parser would have
 * to guess at is refused, since a proxy that reads a message differently from the app behind
 * it invites request smuggling. Refused: a malformed request line, versions other than 1.0
 * and 1.1, header names that are not tokens, control characters in values, obs-fold, both
 * Content-Length and Transfer-Encoding, conflicting Content-Lengths (agreeing ones are passed
 * on as one, RFC 9110 §8.6), a Transfer-Encoding other than just chunked (see
 * UNSUPPORTED_TRANSFER_CODING), CONNECT (but where tunnels are taken: see tunnelTarget), a
 * request target that is not a path, an absolute http:// URL or OPTIONS' `*`
 * (request-target.ts, which also normalises the path), and a missing (HTTP/1.1,
 * origin-form), repeated or invalid Host (RFC 9112 §3.2). Error codes follow llhttp's (what
 * node:http reported); the Host checks, which llhttp does not make, have Skein's own.
 */
import { collapseContentLength, framingOf, isToken, parseHeaderLines, type Framing } from './header-lines.js';
import { HttpParseError } from '../../common/http/parse-error.js';
import { isValidAuthority, normaliseTarget } from '../../common/http/request-target.js';

export interface RequestHead {
  readonly method: string;
  /** Checked, its path normalised (request-target.ts). */
  readonly target: string;
  /** 0 for HTTP/1.0, 1 for HTTP/1.1. */
  readonly minor: number;
  /** Flat `[name, value, ...]` as received. */
  readonly rawHeaders: string[];
  /** -1 when absent. */
  readonly contentLength: number;
  readonly chunked: boolean;
  readonly keepAlive: boolean;
  /**
   * The connection leaves HTTP/1.1 after this head, as llhttp flags it: Connection: upgrade
   * with `Upgrade: websocket` (any other Upgrade (h2c) is a plain request, its Upgrade dropped
   * as hop-by-hop), or a CONNECT taken (`tunnels`).
   */
  readonly upgrade: boolean;
  readonly expectContinue: boolean;
}

/** Code of a request whose Transfer-Encoding ends in chunked but has other codings before it: answered 501 (RFC 9112 §6.1), not 400. */
export const UNSUPPORTED_TRANSFER_CODING = 'ERR_SKEIN_UNSUPPORTED_TRANSFER_CODING';

/** Neither origin-form (`/…`) nor asterisk-form (`*`): the target names its authority itself. */
function isAbsoluteForm(target: string): boolean {
  const c = target.charCodeAt(0);
  return c !== 47 /* / */ && c !== 42 /* * */;
}

/** The last Host value found valid: a client repeats the same one, and comparing is cheaper than checking. */
let lastHost = '';

/**
 * `text` is the head without its final CRLF CRLF. `tunnels`: a CONNECT is taken (the plain
 * outbound listeners, sidecar/listeners.ts), not refused.
 */
export function parseRequestHead(text: string, tunnels = false): RequestHead {
  let eol = text.indexOf('\r\n');
  if (eol < 0) eol = text.length;
  const line = text.slice(0, eol);
  const sp1 = line.indexOf(' ');
  const sp2 = sp1 < 0 ? -1 : line.indexOf(' ', sp1 + 1);
  if (sp1 <= 0 || sp2 < 0 || line.indexOf(' ', sp2 + 1) >= 0) throw new HttpParseError('HPE_INVALID_CONSTANT', 'the request line is not METHOD target HTTP/1.x');
  const method = line.slice(0, sp1);
  const connect = method === 'CONNECT';
  const target = connect ? tunnelTarget(line.slice(sp1 + 1, sp2), tunnels) : checkedTarget(method, line.slice(sp1 + 1, sp2));
  const version = line.slice(sp2 + 1);
  const minor = version === 'HTTP/1.1' ? 1 : version === 'HTTP/1.0' ? 0 : -1;
  if (minor < 0) throw new HttpParseError('HPE_INVALID_VERSION', `unsupported version ${JSON.stringify(version.slice(0, 20))}`);

  const rawHeaders = parseHeaderLines(text, eol + 2);
  const framing = requestFraming(rawHeaders, minor);
  const { contentLength, chunked, keepAlive, upgrade, expectContinue, hosts, host } = framing;
  if (hosts !== 1) {
    // RFC 9112 §3.2: one Host, required in HTTP/1.1; an absolute-form target names its authority itself.
    if (hosts > 1) throw new HttpParseError('ERR_SKEIN_INVALID_HOST', 'more than one Host header');
    if (minor === 1 && !isAbsoluteForm(target)) throw new HttpParseError('ERR_SKEIN_INVALID_HOST', 'no Host header (HTTP/1.1 requires one)');
  } else if (host !== lastHost) {
    if (!isValidAuthority(host)) throw new HttpParseError('ERR_SKEIN_INVALID_HOST', `invalid Host header ${JSON.stringify(host.slice(0, 64))}`);
    lastHost = host;
  }
  // RFC 9110 §9.3.6: a CONNECT's content has no defined meaning; what follows its head is the tunnel's.
  if (connect && (contentLength > 0 || chunked)) throw new HttpParseError('ERR_SKEIN_CONNECT_BODY', 'a CONNECT request with a body (what follows its head is the tunnel)');
  return { method, target, minor, rawHeaders, contentLength, chunked, keepAlive, upgrade: upgrade || connect, expectContinue };
}

/**
 * A request line's method and target checked (a token; no CONNECT; request-target.ts's
 * forms), the target normalised. Shared with a peer sidecar's mux request (sidecar/mux/heads.ts).
 */
export function requestTarget(method: string, target: string): string {
  if (method === 'CONNECT') throw connectRefused();
  return checkedTarget(method, target);
}

function checkedTarget(method: string, target: string): string {
  if (!isToken(method)) throw new HttpParseError('HPE_INVALID_METHOD', `invalid method ${JSON.stringify(method)}`);
  return normaliseTarget(target, method);
}

/**
 * A CONNECT's target, where tunnels are taken: authority form, `host:port` (RFC 9112 §3.2.3),
 * the port required. Only checked: the tunnel goes to no address of its own, its requests are
 * routed by their own Host.
 */
function tunnelTarget(target: string, tunnels: boolean): string {
  if (!tunnels) throw connectRefused();
  const colon = target.lastIndexOf(':');
  // A colon inside an IPv6 literal's brackets is no port's.
  if (colon <= 0 || colon === target.length - 1 || colon < target.lastIndexOf(']') || !isValidAuthority(target)) {
    throw new HttpParseError('HPE_INVALID_URL', `a CONNECT target must be host:port (authority form), not ${JSON.stringify(target.slice(0, 64))}`);
  }
  return target;
}

/**
 * Why a CONNECT is refused where no tunnel is taken (the inbound listener, TLS listeners, a mux
 * stream, HTTP/2): a tunnel has no path to route by, and its authority-form target is no path either.
 */
export function connectRefused(): HttpParseError {
  return new HttpParseError('HPE_INVALID_METHOD', 'CONNECT is not supported');
}

/**
 * What a request head past `--max-request-headers` is told (431), however it came: an HTTP/1.1
 * head, an HTTP/2 one (sidecar/pipeline.ts), a peer's on the mux (sidecar/mux/heads.ts).
 */
export function headTooLarge(maxBytes: number): HttpParseError {
  return new HttpParseError('HPE_HEADER_OVERFLOW', `request headers exceed the limit of ${maxBytes} bytes (--max-request-headers)`);
}

/**
 * The framing of a request's header lines, checked: Content-Length and Transfer-Encoding as
 * framingOf reads them, and a Transfer-Encoding other than just chunked refused. Agreeing
 * repeated Content-Lengths are left as one in `rawHeaders`. Shared with a peer sidecar's mux
 * request (sidecar/mux/heads.ts).
 */
export function requestFraming(rawHeaders: string[], minor: number): Framing {
  const framing = framingOf(rawHeaders, minor);
  if (framing.otherEncoding) {
    // RFC 9112 §6.3: without a final chunked the body's length cannot be told (400). §6.1: other
    // codings (gzip, chunked) are not ones the sidecar applies, and dropping them would hand the
    // app coded bytes it was never told of (501).
    if (!framing.chunked) throw new HttpParseError('HPE_INVALID_TRANSFER_ENCODING', 'transfer-encoding does not end in chunked');
    throw new HttpParseError(UNSUPPORTED_TRANSFER_CODING, 'transfer-encoding other than chunked alone is not implemented');
  }
  if (framing.lengthRepeated) collapseContentLength(rawHeaders, framing.contentLength);
  return framing;
}

/**
 * For a head still without its blank line: refuses a bare LF or CR (RFC 9112 §2.2), which
 * would otherwise leave the client waiting for the head deadline, as CRLF CRLF never comes.
 * `checked`: how much of `buf` an earlier call already passed (the head arriving in pieces);
 * only the rest is scanned, from one byte back (a CR that ended the last piece meets its
 * LF now). Returns what is checked now, for the next call.
 */
export function checkLineEnds(buf: Buffer, checked = 0): number {
  const from = Math.max(0, checked - 1);
  for (let lf = buf.indexOf(10, from); lf >= 0; lf = buf.indexOf(10, lf + 1)) {
    if (lf === 0 || buf[lf - 1] !== 13) throw bareLf();
  }
  for (let cr = buf.indexOf(13, from); cr >= 0 && cr + 1 < buf.length; cr = buf.indexOf(13, cr + 1)) {
    if (buf[cr + 1] !== 10) throw new HttpParseError('HPE_LF_EXPECTED', 'a bare CR in the head (CRLF expected)');
  }
  return buf.length;
}

/**
 * How many bytes of empty lines (CRLF) `buf` starts with: RFC 9112 §2.2 has a server ignore
 * them before a request line (some clients send one after a POST body). An empty line ended
 * by a bare LF is refused, as any bare LF is (checkLineEnds).
 */
export function blankLinesAt(buf: Buffer): number {
  let i = 0;
  while (buf[i] === 13 && buf[i + 1] === 10) i += 2;
  if (buf[i] === 10) throw bareLf();
  return i;
}

function bareLf(): HttpParseError {
  return new HttpParseError('HPE_CR_EXPECTED', 'a line ended by a bare LF (CRLF expected)');
}
