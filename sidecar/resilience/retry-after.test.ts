import { describe, expect, it } from 'vitest';
import { retryAfterMs } from './retry-after.js';

const now = Date.parse('2026-12-07T21:00:00Z');

describe('retryAfterMs', () => {
  it('reads whole seconds', () => {
    expect(retryAfterMs('1', now)).toBe(1000);
    expect(retryAfterMs(' 30 ', now)).toBe(30_000);
    expect(retryAfterMs('0', now)).toBe(0);
    expect(retryAfterMs('9'.repeat(400), now)).toBe(Infinity);
  });

  it("reads RFC 9110's HTTP dates, as the time left until them", () => {
    expect(retryAfterMs('Mon, 07 Dec 2026 21:00:02 GMT', now)).toBe(2000);
    expect(retryAfterMs('Monday, 07-Dec-26 21:00:05 GMT', now)).toBe(5000);
    expect(retryAfterMs('Mon, 07 Dec 2026 20:59:00 GMT', now)).toBe(0);
  });

  it('reads the asctime form, which names no zone, as UTC whatever the host\'s time zone', () => {
    const zone = process.env.TZ;
    try {
      process.env.TZ = 'America/New_York';
      expect(retryAfterMs('Mon Dec  7 21:00:03 2026', now)).toBe(3000);
    } finally {
      if (zone === undefined) delete process.env.TZ;
      else process.env.TZ = zone;
    }
  });

  it('is 0, the ordinary backoff, for no header or one it cannot read', () => {
    for (const value of [undefined, '', '1.5', '-1', 'soon', '2s', 'Mon, 99 Foo 2026']) expect(retryAfterMs(value, now), String(value)).toBe(0);
  });
});
