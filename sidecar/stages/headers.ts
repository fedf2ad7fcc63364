/**
 * Header handling on the request path. Incoming raw header names are classified once per
 * distinct spelling (a small cache keyed by the raw name, so "Host" and "host" each cost one
 * lowercase ever), then copied into the flat `[name, value, ...]` list undici sends:
 * hop-by-hop headers (RFC 9110 §7.6.1: Connection and the names it lists, Keep-Alive, TE but
 * `te: trailers`, Transfer-Encoding, Upgrade, Proxy-*) are dropped, as are the trace headers and
 * `x-skein-attempt`, which this hop writes itself. A response's transfer codings other than
 * chunked are the exception (see transferCodings), and so is RFC 9209's Proxy-Status: an
 * end-to-end field each proxy on the way adds its entry to and passes on.
 */
import { ownEntry } from '../../common/config/own.js';
import { SIDECAR_MADE_HEADER } from '../h2-sidecar-made.js';

/** Response headers as a flat name/value list: Buffers from undici's HTTP/1.1 pools, strings from HTTP/2 upstreams. */
export type RawHeaders = readonly (Buffer | string)[];

export function headerText(b: Buffer | string): string {
  return typeof b === 'string' ? b : b.toString('latin1');
}

export const enum H {
  Pass,
  Drop,
  Connection,
  Te,
  ContentLength,
  TransferEncoding,
  Traceparent,
  Tracestate,
  B3,
  XB3TraceId,
  XB3SpanId,
  XB3Sampled,
  /** `x-b3-flags`: read for B3's debug flag, which this hop writes again itself when set (trace-context.ts). */
  XB3Flags,
  /** `x-b3-parentspanid`: a request's is replaced by this hop's own (trace-context.ts); an app's answer keeps its. */
  XB3ParentSpanId,
  RequestId,
  Upgrade,
  SkeinReason,
  ContentType,
  /** HTTP/2 `:authority`; other pseudo-headers are dropped (the next hop makes its own). */
  Authority,
  /** `x-skein-attempt`: each hop writes its own; an inbound hop carries the caller's try number on to the app. */
  Attempt,
  /** `cookie`: HTTP/2 may split it into crumbs, one field each, which must be one again before an HTTP/1.1 hop (RFC 9113 §8.2.3). */
  Cookie,
}

const KNOWN: Record<string, H> = {
  connection: H.Connection,
  'keep-alive': H.Drop,
  te: H.Te,
  'transfer-encoding': H.TransferEncoding,
  upgrade: H.Upgrade,
  // RFC 9110 §11.7: the proxy authentication fields are for this hop's proxy, never the next.
  // Any other proxy-* field is dropped too (below), Proxy-Connection's kin.
  'proxy-connection': H.Drop,
  'proxy-authorization': H.Drop,
  'proxy-authenticate': H.Drop,
  'proxy-authentication-info': H.Drop,
  // RFC 9209 defines it for responses; a request's goes on as well, as any end-to-end field
  // this hop has no use for does (RFC 9110 §6.3), and a request-only class would cost a case.
  'proxy-status': H.Pass,
  trailer: H.Drop,
  // undici refuses `expect`; node's server already answered 100-continue to the client.
  expect: H.Drop,
  'content-length': H.ContentLength,
  traceparent: H.Traceparent,
  tracestate: H.Tracestate,
  b3: H.B3,
  'x-b3-traceid': H.XB3TraceId,
  'x-b3-spanid': H.XB3SpanId,
  'x-b3-sampled': H.XB3Sampled,
  'x-b3-parentspanid': H.XB3ParentSpanId,
  'x-b3-flags': H.XB3Flags,
  'x-request-id': H.RequestId,
  'x-skein-attempt': H.Attempt,
  // Envoy's SANITIZE_SET: only the inbound hop writes it, from the verified certificate.
  'x-forwarded-client-cert': H.Drop,
  // A peer sidecar's mark on its own HTTP/2 answers, bound to one connection (h2-sidecar-made.ts): never passed on, an app's no more than a peer's.
  [SIDECAR_MADE_HEADER]: H.Drop,
  'x-skein-reason': H.SkeinReason,
  'content-type': H.ContentType,
  cookie: H.Cookie,
};

const CACHE_LIMIT = 2048;
const cache = new Map<string, H>();

export function classify(name: string): H {
  let kind = cache.get(name);
  if (kind !== undefined) return kind;
  const lower = name.toLowerCase();
  kind = ownEntry(KNOWN, lower) ?? (lower.startsWith('proxy-') ? H.Drop : lower.charCodeAt(0) === 58 /* : */ ? (lower === ':authority' ? H.Authority : H.Drop) : H.Pass);
  if (cache.size < CACHE_LIMIT) cache.set(name, kind);
  return kind;
}

/**
 * Names listed in a Connection header other than the standard tokens; these are hop-by-hop
 * too. Host, Content-Length and Transfer-Encoding never are, whatever the list says (RFC 9110
 * §7.6.1: a field meant for every recipient is no connection option): dropping them would send
 * a request on with the sidecar's own address as its Host, or take a response's coding away.
 */
export function connectionListed(value: string): string[] | undefined {
  // Nearly every message says just one of these; skip the split.
  if (value.length <= 10) {
    const v = value.toLowerCase();
    if (v === 'keep-alive' || v === 'close' || v === 'upgrade') return undefined;
  }
  let out: string[] | undefined;
  for (const token of value.split(',')) {
    const t = token.trim().toLowerCase();
    if (t === '' || t === 'close' || t === 'keep-alive' || t === 'upgrade' || t === 'host' || t === 'content-length' || t === 'transfer-encoding') continue;
    (out ??= []).push(t);
  }
  return out;
}

/** Drops `names` (lowercase) from a flat header list, in place. */
export function removeHeaders(headers: string[], names: readonly string[]): void {
  // A head may list thousands of names within its limit (up to 128 KiB), beside thousands of fields: searched
  // for each field, such a list cost names × fields, 30 to 80 ms of a blocked event loop for 4500 of each.
  const many = names.length > 8 ? new Set(names) : undefined;
  let w = 0;
  for (let r = 0; r < headers.length; r += 2) {
    const name = headers[r]!.toLowerCase();
    if (many !== undefined ? many.has(name) : names.includes(name)) continue;
    headers[w++] = headers[r]!;
    headers[w++] = headers[r + 1]!;
  }
  headers.length = w;
}

/**
 * Response headers from a raw list (undici's Buffers, or HTTP/2 strings) to the flat string list `res.writeHead` takes,
 * without hop-by-hop headers. Returns the content-length (or -1) so the writer can end the
 * response with the chunk that completes it; `status` is the answer's, which decides whether
 * it may have one, and `method` the request's: a HEAD answer keeps its Transfer-Encoding whole.
 */
export function responseHeaders(raw: RawHeaders, out: string[], status: number, method: string): number {
  // RFC 9110 §8.6: a 204 has no content, and never a Content-Length; an HTTP/2 caller's stack
  // refuses one (nghttp2 resets the stream), an HTTP/1.1 one is told of bytes that never come.
  const lengthAllowed = status !== 204;
  let contentLength = -1;
  let listed: string[] | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = headerText(raw[i]!);
    const kind = classify(name);
    switch (kind) {
      case H.Pass:
      case H.Cookie:
      case H.ContentType:
      case H.SkeinReason:
      case H.RequestId:
      case H.Traceparent:
      case H.Tracestate:
      case H.B3:
      case H.XB3TraceId:
      case H.XB3SpanId:
      case H.XB3Sampled:
      case H.XB3Flags:
      case H.XB3ParentSpanId:
        out.push(name, headerText(raw[i + 1]!));
        break;
      case H.ContentLength: {
        if (!lengthAllowed) break;
        const value = headerText(raw[i + 1]!);
        contentLength = Number(value);
        out.push(name, value);
        break;
      }
      case H.TransferEncoding: {
        // RFC 9110 §9.3.2: a HEAD answer has the fields a GET's would, and no body for this hop
        // to frame (the writers send none), so a final chunked is the app's to say too.
        const value = headerText(raw[i + 1]!);
        const codings = method === 'HEAD' ? value : transferCodings(value);
        if (codings !== '') out.push(name, codings);
        break;
      }
      case H.Connection:
        listed = connectionListed(headerText(raw[i + 1]!));
        break;
      default:
        break;
    }
  }
  if (listed !== undefined) removeHeaders(out, listed);
  return contentLength;
}

/**
 * A response's Transfer-Encoding without a final `chunked`, '' when nothing else is left:
 * chunked is this hop's framing, which the writer sets again, but a coding such as gzip is
 * the client's to undo (it knows of it from this header only), so it goes on (RFC 9112 §6.1).
 */
export function transferCodings(value: string): string {
  if (value.length === 7 && value.toLowerCase() === 'chunked') return '';
  const codings = value.split(',').map((c) => c.trim()).filter((c) => c !== '');
  if (codings.length > 0 && codings[codings.length - 1]!.toLowerCase() === 'chunked') codings.pop();
  return codings.join(', ');
}
