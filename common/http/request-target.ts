/**
 * The request target (RFC 9112 §3.2), checked and with its path normalised, so that route
 * matching and the app behind the sidecar read the same path (a rule for `/public` must not
 * match `/public/../private`). Accepted: origin-form (`/path?query`), absolute-form
 * (`http://authority/path?query`, HTTP proxy mode) and `*` for OPTIONS; printable ASCII only,
 * no fragment. The path (never the query) is normalised as RFC 3986 §6.2.2 describes and as
 * Istio's default (`BASE`) does: percent-encoded unreserved characters are decoded (`%2e` is a
 * dot, `%7E` a tilde), `.` and `..` segments are removed (§5.2.4; `..` stops at the root), a
 * backslash is a slash, and repeated slashes are merged into one, as Istio's `MERGE_SLASHES`
 * does (nginx and many frameworks read `//admin/x` as `/admin/x`; so do routes, and the app
 * gets the merged path). Encoded slashes and backslashes (`%2F`, `%5C`) are kept: they name a
 * different resource than a slash does; but a path whose meaning would change if the app
 * decoded them before resolving dots is refused: a dot segment between encoded slashes
 * (`/a/..%2Fb`) or a `..` that would remove a segment holding one (`/a%2Fb/..`). So are a dot
 * segment with path parameters (`/..;/`, `/.;x/`: Tomcat, Jetty and Spring drop the
 * parameters, then resolve the dots) and `%00` anywhere in the path.
 *
 * A well-formed target costs one pass of comparisons and no allocation; only a path with
 * something to normalise is rebuilt.
 */
import { HttpParseError } from './parse-error.js';

const SLASH = 0x2f;
const BACKSLASH = 0x5c;
const DOT = 0x2e;
const PERCENT = 0x25;
const QUESTION = 0x3f;
const HASH = 0x23;
const STAR = 0x2a;
const SEMICOLON = 0x3b;
const SEPARATOR = /[/\\]/;
const ENCODED_SEPARATOR = /%2f|%5c/i;

/**
 * `target` checked (a refusal throws HttpParseError `HPE_INVALID_URL`), with its path
 * normalised; the very string given when there is nothing to normalise.
 */
export function normaliseTarget(target: string, method: string): string {
  const n = target.length;
  let i = 0;
  if (target.charCodeAt(0) !== SLASH) {
    if (n === 1 && target.charCodeAt(0) === STAR && method === 'OPTIONS') return target;
    i = absolutePathStart(target);
  }
  const pathStart = i;
  let pathEnd = n;
  let dirty = false;
  let prev = 0;
  for (; i < n; i++) {
    const c = target.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f || c === HASH) throw refused(c === HASH ? 'a fragment (#) in the request target' : 'a control, space or non-ASCII character in the request target');
    if (pathEnd !== n) continue;
    if (c === PERCENT) {
      const hi = hexValue(target.charCodeAt(i + 1));
      const lo = hexValue(target.charCodeAt(i + 2));
      if (hi < 0 || lo < 0) throw refused('a malformed percent-encoding in the path');
      const byte = hi * 16 + lo;
      if (byte === 0) throw refused('%00 in the path');
      if (isUnreserved(byte) || byte === SLASH || byte === BACKSLASH) dirty = true;
      i += 2;
    } else if (c === QUESTION) pathEnd = i;
    else if (c === BACKSLASH || (c === SLASH && prev === SLASH)) dirty = true;
    else if (c === DOT && prev === SLASH) {
      if (isDotSegment(target, i)) dirty = true;
      else if (isDotWithParameters(target, i)) throw refused(DOT_PARAMETERS);
    }
    prev = c;
  }
  if (!dirty) return target;
  return target.slice(0, pathStart) + normalisePath(target.slice(pathStart, pathEnd)) + target.slice(pathEnd);
}

/** The `.` at `i`, just after a slash, starts a `.` or `..` segment (not `/.well-known`). */
function isDotSegment(target: string, i: number): boolean {
  let end = i + 1;
  if (target.charCodeAt(end) === DOT) end++;
  if (end === target.length) return true;
  const c = target.charCodeAt(end);
  return c === SLASH || c === QUESTION || c === BACKSLASH;
}

/** The `.` at `i`, just after a slash, starts `.;` or `..;`: a dot segment with path parameters. */
function isDotWithParameters(target: string, i: number): boolean {
  const next = target.charCodeAt(i + 1);
  return next === SEMICOLON || (next === DOT && target.charCodeAt(i + 2) === SEMICOLON);
}

const DOT_PARAMETERS = 'a dot segment with path parameters (.;, ..;): an app that drops the parameters would read another path';

/** For an absolute-form target: where its path starts, after a valid authority; anything else is refused. */
function absolutePathStart(target: string): number {
  const start = authorityStart(target);
  if (start < 0) throw refused('the request target is neither a path (/…) nor an absolute http:// URL');
  let end = start;
  while (end < target.length) {
    const c = target.charCodeAt(end);
    if (c === SLASH || c === QUESTION || c === HASH) break;
    end++;
  }
  if (end === start || !isValidAuthority(target, start, end)) throw refused('an invalid authority in the absolute-form request target');
  return end;
}

/** After `http://` or `https://` (any case): where the authority starts; -1 for another start. */
function authorityStart(t: string): number {
  if ((t.charCodeAt(0) | 0x20) !== 0x68 || (t.charCodeAt(1) | 0x20) !== 0x74 || (t.charCodeAt(2) | 0x20) !== 0x74 || (t.charCodeAt(3) | 0x20) !== 0x70) return -1;
  const colon = (t.charCodeAt(4) | 0x20) === 0x73 ? 5 : 4;
  return t.charCodeAt(colon) === 0x3a && t.charCodeAt(colon + 1) === SLASH && t.charCodeAt(colon + 2) === SLASH ? colon + 3 : -1;
}

/** `path` (starting with a slash, without the query) with unreserved escapes decoded, slashes merged and dot segments removed. */
function normalisePath(path: string): string {
  const segments = path.slice(1).split(SEPARATOR);
  const out: string[] = [];
  let trailingSlash = false;
  for (let k = 0; k < segments.length; k++) {
    const segment = decodeUnreserved(segments[k]!);
    // Repeated slashes are one; a last empty segment is the trailing slash.
    if (segment === '' && k < segments.length - 1) continue;
    if (segment.startsWith('.;') || segment.startsWith('..;')) throw refused(DOT_PARAMETERS);
    if (segment === '.' || segment === '..') {
      if (segment === '..' && out.length > 0 && ENCODED_SEPARATOR.test(out.pop()!)) {
        throw refused('a .. segment removing one with an encoded slash: an app that decodes it would read another path');
      }
      // `/a/.` is `/a/`: the last segment names a directory.
      if (k === segments.length - 1) trailingSlash = true;
      continue;
    }
    if (ENCODED_SEPARATOR.test(segment) && hidesDotSegment(segment)) throw refused('a dot segment beside an encoded slash (%2F, %5C): an app that decodes it would read another path');
    out.push(segment);
  }
  const joined = `/${out.join('/')}`;
  return trailingSlash && out.length > 0 ? `${joined}/` : joined;
}

/** A segment holding `.` or `..` between encoded slashes or backslashes. */
function hidesDotSegment(segment: string): boolean {
  for (const piece of segment.split(ENCODED_SEPARATOR)) if (piece === '.' || piece === '..') return true;
  return false;
}

/** Percent-encoded unreserved characters decoded (RFC 3986 §6.2.2.2); other escapes kept as they came. Escapes are already checked. */
function decodeUnreserved(segment: string): string {
  let pct = segment.indexOf('%');
  if (pct < 0) return segment;
  let out = '';
  let from = 0;
  while (pct >= 0) {
    const byte = hexValue(segment.charCodeAt(pct + 1)) * 16 + hexValue(segment.charCodeAt(pct + 2));
    if (isUnreserved(byte)) {
      out += segment.slice(from, pct) + String.fromCharCode(byte);
      from = pct + 3;
    }
    pct = segment.indexOf('%', pct + 3);
  }
  return out + segment.slice(from);
}

/** ALPHA / DIGIT / "-" / "." / "_" / "~" (RFC 3986 §2.3). */
function isUnreserved(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === DOT || c === 0x5f || c === 0x7e;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const lower = c | 0x20;
  return lower >= 0x61 && lower <= 0x66 ? lower - 0x57 : -1;
}

/**
 * `host[:port]` as RFC 9110 §7.2 allows it in Host and in an absolute-form target: a
 * registered name or IPv4 address (unreserved characters, escapes, sub-delims) or a bracketed
 * IPv6 literal, and a port of digits up to 65535. Userinfo (`user@`) is not allowed. '' is valid.
 * Checks `text` from `start` to `end`.
 */
export function isValidAuthority(text: string, start = 0, end = text.length): boolean {
  let i = start;
  if (text.charCodeAt(start) === 0x5b /* [ */) {
    const close = text.indexOf(']', start);
    if (close < start + 2 || close >= end) return false;
    for (i = start + 1; i < close; i++) {
      const c = text.charCodeAt(i);
      if (!(hexValue(c) >= 0 || c === 0x3a /* : */ || c === DOT)) return false;
    }
    i = close + 1;
  } else {
    for (; i < end; i++) {
      const c = text.charCodeAt(i);
      if (c === 0x3a /* : */) break;
      if (c === PERCENT) {
        if (i + 2 >= end || hexValue(text.charCodeAt(i + 1)) < 0 || hexValue(text.charCodeAt(i + 2)) < 0) return false;
        i += 2;
      } else if (!isUnreserved(c) && !isSubDelim(c)) return false;
    }
  }
  if (i === end) return true;
  if (text.charCodeAt(i) !== 0x3a /* : */) return false;
  // RFC 3986 §3.2.3: `port = *DIGIT`, so leading zeros are allowed (`:0000080` is 80).
  let port = 0;
  for (i++; i < end; i++) {
    const d = text.charCodeAt(i) - 0x30;
    if (d < 0 || d > 9) return false;
    port = port * 10 + d;
    if (port > 65535) return false;
  }
  return true;
}

/** "!" / "$" / "&" / "'" / "(" / ")" / "*" / "+" / "," / ";" / "=" */
function isSubDelim(c: number): boolean {
  return c === 0x21 || c === 0x24 || (c >= 0x26 && c <= 0x2c) || c === 0x3b || c === 0x3d;
}

function refused(why: string): HttpParseError {
  return new HttpParseError('HPE_INVALID_URL', why);
}
