import { describe, expect, it } from 'vitest';
import { describeSpread } from './spread.js';

describe('describeSpread', () => {
  it('gives the range and median of each figure', () => {
    const text = describeSpread([
      { 'max rps (C)/(B)': 0.34, '(B) max rps': 9910 },
      { 'max rps (C)/(B)': 0.38, '(B) max rps': 11241 },
      { 'max rps (C)/(B)': 0.36, '(B) max rps': 9442 },
    ]);
    expect(text).toBe(
      'Across 3 runs of this command:\n\n- max rps (C)/(B): 0.34 – 0.38 (median 0.36)\n- (B) max rps: 9,442 – 11,241 (median 9,910)',
    );
  });

  it('says when a figure is missing from some runs', () => {
    const text = describeSpread([{ 'added p99 (C)/(B)': 1.2 }, {}]);
    expect(text).toContain('- added p99 (C)/(B): 1.20 (in 1 of 2 runs)');
  });
});
