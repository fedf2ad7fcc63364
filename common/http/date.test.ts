import { describe, expect, it } from 'vitest';
import { httpDate } from './date.js';

describe('httpDate', () => {
  it('gives the IMF-fixdate of the second, made anew when the second changes', () => {
    expect(httpDate(Date.UTC(2026, 11, 6, 17, 5, 0, 400))).toBe('Sun, 06 Dec 2026 17:05:00 GMT');
    expect(httpDate(Date.UTC(2026, 11, 6, 17, 5, 0, 999))).toBe('Sun, 06 Dec 2026 17:05:00 GMT');
    expect(httpDate(Date.UTC(2026, 11, 6, 17, 5, 1, 0))).toBe('Sun, 06 Dec 2026 17:05:01 GMT');
    expect(httpDate()).toMatch(/^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/);
  });
});
