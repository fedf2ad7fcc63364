/**
 * Trace propagation (SPEC §6): W3C `traceparent` and B3 (single `b3` and `x-b3-*`) in, all
 * of them out. Each hop is a new span whose parent is the caller's span; a request without
 * a trace starts one. Ids come from a pooled random buffer refilled in batches, so a request
 * costs two hex slices rather than a crypto call.
 */
import { randomFillSync } from 'node:crypto';
import { filterTracestate } from './tracestate.js';

const POOL_BYTES = 8192;

export class IdSource {
  private readonly pool = Buffer.allocUnsafe(POOL_BYTES);
  private offset = POOL_BYTES;

  /** `bytes` random bytes as lowercase hex. */
  hex(bytes: number): string {
    if (this.offset + bytes > POOL_BYTES) {
      randomFillSync(this.pool);
      this.offset = 0;
    }
    const s = this.pool.toString('hex', this.offset, this.offset + bytes);
    this.offset += bytes;
    return s;
  }

  spanId(): string {
    return this.hex(8);
  }

  traceId(): string {
    return this.hex(16);
  }

  /** A random (version 4) UUID, the usual shape of `x-request-id`. */
  uuid(): string {
    const h = this.hex(16);
    // Version nibble 4, variant bits 10xx.
    const variant = ((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16);
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20)}`;
  }
}

/** The caller's `x-request-id` when it sent a usable one, else a new one. */
export function requestIdFor(incoming: string | undefined, ids: IdSource): string {
  return incoming !== undefined && incoming.length > 0 && incoming.length <= 256 ? incoming : ids.uuid();
}

/** The trace fields of one hop; '' where absent. */
export interface TraceFields {
  traceId: string;
  spanId: string;
  /** The caller's span, '' for a root span. */
  parentSpanId: string;
  sampled: boolean;
  /**
   * B3's debug flag (`x-b3-flags: 1`, or `d` as the `b3` header's sampling state): a request
   * to record this trace whatever any sampler says. It implies sampled and goes on to the
   * next hop as debug, which neither `x-b3-sampled` nor a traceparent flag can say.
   */
  debug: boolean;
  /**
   * The caller's W3C `tracestate` to forward, its invalid members dropped (tracestate.ts);
   * continueTrace clears it unless the traceparent was valid.
   */
  tracestate?: string | undefined;
}

/** The incoming trace headers of a request (undefined when absent). */
export interface IncomingTraceHeaders {
  traceparent: string | undefined;
  b3: string | undefined;
  xB3TraceId: string | undefined;
  xB3SpanId: string | undefined;
  xB3Sampled: string | undefined;
  /** `x-b3-flags`: `1` is B3's debug flag. */
  xB3Flags?: string | undefined;
  tracestate?: string | undefined;
}

const ZERO_TRACE = '00000000000000000000000000000000';

/** A non-zero lowercase hex id of exactly `length` characters. */
function isHex(s: string, length: number): boolean {
  return s.length === length && hexRange(s, 0, length, true);
}

/** Value of a lowercase hex digit, or -1. W3C ids are lowercase only, so no case folding. */
function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

/** `s[start, end)` is lowercase hex and, when `nonZero`, not all zeros. Reads chars in place, no slices. */
function hexRange(s: string, start: number, end: number, nonZero: boolean): boolean {
  let any = 0;
  for (let i = start; i < end; i++) {
    const v = hexValue(s.charCodeAt(i));
    if (v < 0) return false;
    any |= v;
  }
  return !nonZero || any !== 0;
}

/**
 * W3C trace-context level 1: `version-traceid-parentid-flags`, lowercase hex, version 00
 * exactly 55 characters, later versions may append fields after a `-`; version ff is invalid.
 */
function isTraceparent(tp: string): boolean {
  const n = tp.length;
  if (n < 55 || tp.charCodeAt(2) !== 45 || tp.charCodeAt(35) !== 45 || tp.charCodeAt(52) !== 45) return false;
  if (!hexRange(tp, 0, 2, false) || (tp.charCodeAt(0) === 102 && tp.charCodeAt(1) === 102)) return false;
  const v00 = tp.charCodeAt(0) === 48 && tp.charCodeAt(1) === 48;
  if (v00 ? n !== 55 : n > 55 && tp.charCodeAt(55) !== 45) return false;
  return hexRange(tp, 53, 55, false) && hexRange(tp, 3, 35, true) && hexRange(tp, 36, 52, true);
}

/**
 * The B3 multi headers' sampling decision (debug aside): `x-b3-sampled` 0 or false (B3 asks
 * to accept the older true/false spelling too) is not sampled, and anything else, or none
 * (the decision deferred), is.
 */
function b3MultiSampled(incoming: IncomingTraceHeaders): boolean {
  const s = incoming.xB3Sampled;
  return s !== '0' && !(s !== undefined && s.length === 5 && s.toLowerCase() === 'false');
}

/**
 * What may follow the ids of a `b3` header: a sampling state (0, 1 or d), then the parent span
 * id. Anything else makes the header malformed, and B3 ignores a malformed header (as Brave
 * does) rather than continue a trace on a guess.
 */
function b3SingleTail(parts: readonly string[]): boolean {
  if (parts.length === 2) return true;
  const state = parts[2];
  if (parts.length > 4 || (state !== '0' && state !== '1' && state !== 'd')) return false;
  return parts.length === 3 || isHex(parts[3]!.toLowerCase(), 16);
}

/**
 * B3 debug: `x-b3-flags: 1`, or `d` as the sampling state of a `b3` header (`d` alone, or
 * `traceid-spanid-d[-parent]`). Read whichever header carried the ids, as it is a request to
 * record this trace, not a part of its position; no allocation, as it runs for every request.
 */
function b3Debug(incoming: IncomingTraceHeaders): boolean {
  if (incoming.xB3Flags === '1') return true;
  const b3 = incoming.b3;
  if (b3 === undefined) return false;
  if (b3.length === 1) return b3 === 'd';
  const first = b3.indexOf('-');
  const second = first < 0 ? -1 : b3.indexOf('-', first + 1);
  return second > 0 && b3.charCodeAt(second + 1) === 100 && (b3.length === second + 2 || b3.charCodeAt(second + 2) === 45);
}

/** B3 allows 64-bit trace ids; W3C needs 128 bits, so pad on the left. */
function traceId128(id: string): string | undefined {
  const lower = id.toLowerCase();
  if (isHex(lower, 32)) return lower;
  if (isHex(lower, 16)) return ZERO_TRACE.slice(16) + lower;
  return undefined;
}

/**
 * Fills `out` for this hop: the trace id and sampling of the incoming trace (traceparent
 * first, then b3, then x-b3-*) with a fresh span id whose parent is the caller's span, or a
 * new sampled trace when none came in. B3 debug makes any of them sampled (B3: debug implies
 * an accept decision).
 */
export function continueTrace(out: TraceFields, incoming: IncomingTraceHeaders, ids: IdSource): void {
  out.spanId = ids.spanId();
  const debug = b3Debug(incoming);
  out.debug = debug;
  const tp = incoming.traceparent;
  if (tp !== undefined && isTraceparent(tp)) {
    out.traceId = tp.slice(3, 35);
    out.parentSpanId = tp.slice(36, 52);
    out.sampled = debug || (hexValue(tp.charCodeAt(54)) & 1) === 1;
    const ts = incoming.tracestate;
    out.tracestate = ts === undefined ? undefined : filterTracestate(ts);
    return;
  }
  // W3C: tracestate means nothing without a valid traceparent.
  out.tracestate = undefined;
  const b3 = incoming.b3;
  if (b3 !== undefined && b3.length > 1) {
    const parts = b3.split('-');
    const traceId = traceId128(parts[0]!);
    const parent = parts[1]?.toLowerCase();
    if (traceId !== undefined && parent !== undefined && isHex(parent, 16) && b3SingleTail(parts)) {
      out.traceId = traceId;
      out.parentSpanId = parent;
      out.sampled = debug || parts[2] !== '0'; // 1, d (debug), or absent (defer: we sample)
      return;
    }
  }
  if (incoming.xB3TraceId !== undefined && incoming.xB3SpanId !== undefined) {
    const traceId = traceId128(incoming.xB3TraceId);
    const parent = incoming.xB3SpanId.toLowerCase();
    if (traceId !== undefined && isHex(parent, 16)) {
      out.traceId = traceId;
      out.parentSpanId = parent;
      out.sampled = debug || b3MultiSampled(incoming);
      return;
    }
  }
  out.traceId = ids.traceId();
  out.parentSpanId = '';
  out.sampled = debug || (b3MultiSampled(incoming) && incoming.b3 !== '0');
}

function appendTraceparent(headers: string[], t: TraceFields): void {
  headers.push('traceparent', `00-${t.traceId}-${t.spanId}-${t.sampled ? '01' : '00'}`);
}

/**
 * The trace headers for a hop to a peer Skein sidecar: the W3C `traceparent`, which it reads
 * first and writes every format again from for its app, so B3 copies would only cost bytes;
 * `x-b3-flags: 1` besides when debug, which a traceparent cannot carry.
 */
export function appendPeerTraceHeaders(headers: string[], t: TraceFields): void {
  appendTraceparent(headers, t);
  if (t.debug) headers.push('x-b3-flags', '1');
}

/**
 * Appends the outgoing trace headers of this hop, in every format, to a flat `[name, value,
 * ...]` header list. Debug goes on as B3 writes it: `d` as the `b3` sampling state, and
 * `x-b3-flags: 1` instead of `x-b3-sampled` ("Debug implies an accept decision, so don't also
 * send the X-B3-Sampled header"). `tracestate` is not among them: the caller forwards
 * `t.tracestate` itself when defined.
 */
export function appendTraceHeaders(headers: string[], t: TraceFields): void {
  const sampling = t.debug ? 'd' : t.sampled ? '1' : '0';
  appendTraceparent(headers, t);
  headers.push(
    'b3', t.parentSpanId === '' ? `${t.traceId}-${t.spanId}-${sampling}` : `${t.traceId}-${t.spanId}-${sampling}-${t.parentSpanId}`,
    'x-b3-traceid', t.traceId,
    'x-b3-spanid', t.spanId,
  );
  if (t.debug) headers.push('x-b3-flags', '1');
  else headers.push('x-b3-sampled', sampling);
  if (t.parentSpanId !== '') headers.push('x-b3-parentspanid', t.parentSpanId);
}

/**
 * A hop's outgoing trace headers, `traceparent` first: every format, or to a peer Skein
 * sidecar only what it reads (appendPeerTraceHeaders), then the caller's valid `tracestate`.
 */
export function appendHopTraceHeaders(headers: string[], t: TraceFields, peerIsSidecar: boolean): void {
  if (peerIsSidecar) appendPeerTraceHeaders(headers, t);
  else appendTraceHeaders(headers, t);
  if (t.tracestate !== undefined) headers.push('tracestate', t.tracestate);
}
