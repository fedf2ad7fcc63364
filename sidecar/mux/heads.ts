/**
 * A peer sidecar's heads on the mux (frames.ts), held to the rules Skein's HTTP/1.1 parsers
 * apply to a client's request (http1/request-head.ts) and an app's answer
 * (http1/response-head.ts): method a token, target in a form the inbound takes and its path
 * normalised, header names tokens, no control characters (CR, LF, NUL…) in values, Content-Length
 * digits and agreeing, not both it and Transfer-Encoding. The peer is a Skein sidecar that
 * already checked what it sends, so this is a guard, not a parser: a mesh certificate must not
 * be enough to hand an app a second request inside a body, a forged header behind a bare LF
 * or an un-normalised path, nor to hand a caller a forged response.
 *
 * Not checked: the Host rules (RFC 9112 §3.2). The inbound routes nothing by Host, and a peer
 * relays an HTTP/2 caller's `:authority` and `host` as two Host lines (sidecar/exchange.ts).
 * A head arrives whole in its frame, so there is no head timeout here either; its size is held
 * to this listener's `--max-request-headers`, as an HTTP/1.1 head's is (431).
 */
import { parseHeaderLines } from '../http1/header-lines.js';
import { headTooLarge, requestFraming, requestTarget } from '../http1/request-head.js';
import { parseStatusAndHeaders, type ResponseHead } from '../http1/response-head.js';
import { HttpParseError } from '../../common/http/parse-error.js';

export interface PeerRequestHead {
  readonly method: string;
  /** Checked, its path normalised. */
  readonly target: string;
  readonly rawHeaders: string[];
  /** -1 when absent. */
  readonly contentLength: number;
  readonly chunked: boolean;
}

/**
 * A REQUEST frame's payload, `METHOD target\r\n` and header lines; throws HttpParseError
 * (llhttp's codes) when it breaks a rule or is longer than `maxBytes`.
 */
export function parsePeerRequest(payload: Buffer, maxBytes: number): PeerRequestHead {
  // Counted as Http1Server counts a head: to its blank line, the last line's CRLF not included.
  if (payload.length - 2 > maxBytes) throw headTooLarge(maxBytes);
  const text = payload.toString('latin1');
  const eol = firstLineEnd(text);
  const space = text.indexOf(' ');
  if (space <= 0 || space > eol) throw new HttpParseError('HPE_INVALID_CONSTANT', 'the request line is not METHOD target');
  const method = text.slice(0, space);
  const target = requestTarget(method, text.slice(space + 1, eol));
  const rawHeaders = parseHeaderLines(text, eol + 2);
  const { contentLength, chunked } = requestFraming(rawHeaders, 1);
  return { method, target, rawHeaders, contentLength, chunked };
}

/** A RESPONSE frame's payload, `NNN reason\r\n` and header lines; throws HttpParseError when it breaks a rule. */
export function parsePeerResponse(payload: Buffer): ResponseHead {
  const text = payload.toString('latin1');
  return parseStatusAndHeaders(text, 0, firstLineEnd(text), 1);
}

/** A TRAILERS frame's payload: header lines only. */
export function parsePeerTrailers(payload: Buffer): string[] {
  return parseHeaderLines(payload.toString('latin1'), 0);
}

function firstLineEnd(text: string): number {
  const eol = text.indexOf('\r\n');
  if (eol < 0) throw new HttpParseError('HPE_INVALID_CONSTANT', 'a head without a line end');
  return eol;
}
