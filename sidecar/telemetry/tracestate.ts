/**
 * The W3C `tracestate` list (trace-context level 1 §3.3) filtered before it goes on: a list
 * member whose key or value breaks the grammar (§3.3.1.3), a key seen earlier in the list
 * (§3.3.1.4: one entry per key, the left-most being the most recent) and members past the 32nd
 * (§3.3.1.1) are dropped, and the valid ones go on in their order. §4.3 lets a vendor drop
 * the whole header or only its invalid entries; dropping only the entries keeps the other
 * vendors' correlation when one of them writes a bad one. Empty members are allowed in and
 * dropped too (senders SHOULD avoid them); a list with nothing valid left is not sent at all.
 *
 * One pass over the characters, no regex and no splitting: a valid list, the usual case, is
 * returned as it came, and only a list that lost a member is built again.
 */
const MAX_MEMBERS = 32;

/**
 * Where each kept member starts, its `=` and its end, three per member. Shared by every call:
 * filterTracestate runs to completion without yielding, so no two calls ever use it at once.
 */
const kept = new Int32Array(MAX_MEMBERS * 3);

/** `header` with its invalid, repeated, surplus and empty members dropped; undefined when none is left. */
export function filterTracestate(header: string): string | undefined {
  const n = header.length;
  let count = 0;
  let dropped = false;
  for (let from = 0; from <= n; ) {
    let to = header.indexOf(',', from);
    if (to < 0) to = n;
    // Spaces and tabs around a member are not part of it (§3.3.1.1).
    let start = from;
    let end = to;
    while (start < end && isOws(header.charCodeAt(start))) start++;
    while (end > start && isOws(header.charCodeAt(end - 1))) end--;
    const eq = start === end ? -1 : keyEnd(header, start, end);
    if (eq < 0 || count === MAX_MEMBERS || !isValue(header, eq + 1, end) || seen(header, start, eq, count)) {
      dropped = true;
    } else {
      kept[count * 3] = start;
      kept[count * 3 + 1] = eq;
      kept[count * 3 + 2] = end;
      count++;
    }
    from = to + 1;
  }
  if (!dropped) return header;
  if (count === 0) return undefined;
  let out = header.slice(kept[0], kept[2]);
  for (let i = 1; i < count; i++) out += `,${header.slice(kept[i * 3], kept[i * 3 + 2])}`;
  return out;
}

function isOws(c: number): boolean {
  return c === 32 || c === 9;
}

function isLcAlpha(c: number): boolean {
  return c >= 97 && c <= 122;
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

/** lcalpha / DIGIT / "_" / "-" / "*" / "/" */
function isKeyChar(c: number): boolean {
  return isLcAlpha(c) || isDigit(c) || c === 95 || c === 45 || c === 42 || c === 47;
}

/**
 * The index of the `=` ending a valid key that starts at `start`, or -1. Level 1 keys:
 * `simple-key = lcalpha 0*255(keychar)`, or `tenant-id "@" system-id` with
 * `tenant-id = (lcalpha / DIGIT) 0*240(keychar)` and `system-id = lcalpha 0*13(keychar)`.
 */
function keyEnd(s: string, start: number, end: number): number {
  let at = -1;
  let i = start;
  for (; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c === 61) break; // =
    if (c === 64) {
      // @
      if (at >= 0) return -1;
      at = i;
    } else if (!isKeyChar(c)) {
      return -1;
    }
  }
  if (i === end) return -1;
  const first = s.charCodeAt(start);
  if (at < 0) return isLcAlpha(first) && i - start <= 256 ? i : -1;
  const tenant = at - start;
  const system = i - at - 1;
  const tenantOk = tenant >= 1 && tenant <= 241 && (isLcAlpha(first) || isDigit(first));
  return tenantOk && system >= 1 && system <= 14 && isLcAlpha(s.charCodeAt(at + 1)) ? i : -1;
}

/** `value = 0*255(chr) nblk-chr`: 1–256 printable ASCII characters but `,` and `=`, not ending in a space (the caller trimmed those). */
function isValue(s: string, start: number, end: number): boolean {
  const length = end - start;
  if (length < 1 || length > 256) return false;
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x2c || c === 0x3d) return false;
  }
  return true;
}

/** The key `s[start, eq)` is one of the first `count` kept members' keys. */
function seen(s: string, start: number, eq: number, count: number): boolean {
  const length = eq - start;
  for (let m = 0; m < count; m++) {
    const at = kept[m * 3]!;
    if (kept[m * 3 + 1]! - at !== length) continue;
    let i = 0;
    while (i < length && s.charCodeAt(at + i) === s.charCodeAt(start + i)) i++;
    if (i === length) return true;
  }
  return false;
}
