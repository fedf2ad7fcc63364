/**
 * The wait a retried 429 asks for in its `Retry-After` (RFC 9110 §10.2.3), as Envoy's
 * `rate_limited_retry_back_off` reads it: the next try goes no sooner, and a wait longer than
 * the sidecar would hold the request passes the 429 back at once (the caller, told when to come
 * back, decides), rather than holding it until the deadline.
 */

/** The longest Retry-After a retry waits for; a longer one is the caller's to honour. */
export const RETRY_AFTER_MAX_MS = 10_000;

/** RFC 9110 §5.6.7's obsolete asctime form, `Sun Nov  6 08:49:37 1994`. */
const ASCTIME = /^[A-Za-z]{3} [A-Za-z]{3} [ \d]\d \d\d:\d\d:\d\d \d{4}$/;

/**
 * Milliseconds from `nowMs` (epoch) that `value` asks for: whole seconds (`120`) or an HTTP
 * date. 0 when absent, unreadable or already past: the ordinary backoff then applies, as Envoy
 * skips a header it cannot read.
 */
export function retryAfterMs(value: string | undefined, nowMs: number): number {
  if (value === undefined) return 0;
  const text = value.trim();
  // Digits alone are seconds; a huge count is Infinity, past any cap.
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  // RFC 9110's three date forms all name a weekday, so a stray number (`1.5`) is no date.
  if (!/^[A-Za-z]{3}/.test(text)) return 0;
  // asctime's form names no zone, and Date.parse would read it as the host's local time; every HTTP date is UTC.
  const at = Date.parse(ASCTIME.test(text) ? `${text} GMT` : text);
  return Number.isNaN(at) || at <= nowMs ? 0 : at - nowMs;
}
