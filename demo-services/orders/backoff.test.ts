import { describe, expect, it } from 'vitest';
import { backoffMs } from './backoff.js';

describe('backoffMs', () => {
  it('doubles per attempt up to the cap, jittered between half and all of the step', () => {
    expect(backoffMs(0, 100, 5000, () => 0)).toBe(50);
    expect(backoffMs(0, 100, 5000, () => 1)).toBe(100);
    expect(backoffMs(3, 100, 5000, () => 1)).toBe(800);
    expect(backoffMs(10, 100, 5000, () => 0)).toBe(2500);
    expect(backoffMs(1000, 100, 5000, () => 1)).toBe(5000);
  });
});
