/**
 * The `Date` field a proxy adds to an answer that has none (RFC 9110 §6.6.1: a recipient that
 * forwards a response without one must add it; Envoy does, as node:http does to its own
 * answers). Its text changes once a second, so it is made once a second: a memo of the clock,
 * the same for every caller.
 */
let second = -1;
let text = '';

/** Now as an IMF-fixdate (`Sun, 06 Dec 2026 17:05:00 GMT`). */
export function httpDate(now: number = Date.now()): string {
  const s = Math.floor(now / 1000);
  if (s !== second) {
    second = s;
    text = new Date(s * 1000).toUTCString();
  }
  return text;
}

/** A header name that is `Date`, in any case; cheap enough for every line of an answer's head. */
export function isDateName(name: string): boolean {
  return name.length === 4 && name.toLowerCase() === 'date';
}
