import { describe, expect, it } from 'vitest';
import { RecoveryHold } from './recovery-hold.js';

describe('RecoveryHold', () => {
  it('keeps a set an answer would empty only within the hold period after a recovery', () => {
    let now = 1_000;
    const hold = new RecoveryHold(30_000, () => now);
    // No outage yet: an empty answer is news.
    expect(hold.keeps(2, 0)).toBe(false);
    hold.recovered();
    expect(hold.keeps(2, 0)).toBe(true);
    // Shrinking, growing, or staying empty is applied even during the hold.
    expect(hold.keeps(2, 1)).toBe(false);
    expect(hold.keeps(0, 0)).toBe(false);
    now += 29_999;
    expect(hold.keeps(2, 0)).toBe(true);
    now += 1;
    expect(hold.keeps(2, 0)).toBe(false);
  });
});
