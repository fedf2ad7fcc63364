import { describe, expect, it } from 'vitest';
import { leastRequestPicker } from './least-request.js';
import { randomPicker } from './random.js';
import { roundRobinPicker } from './round-robin.js';

const endpoints = (n: number) => Array.from({ length: n }, (_, i) => ({ key: `e${i}`, active: 0 }));

describe('balancers', () => {
  it('round-robin visits endpoints in turn and skips ejected ones', () => {
    const eps = endpoints(3);
    const picker = roundRobinPicker(eps, (k) => k === 'e1', () => 0);
    expect([1, 2, 3, 4].map(() => picker.pick()!.key)).toEqual(['e0', 'e2', 'e0', 'e2']);
  });

  it('least-request prefers the endpoint with fewer requests in flight', () => {
    const eps = endpoints(2);
    eps[0]!.active = 5;
    const picker = leastRequestPicker(eps, () => false);
    for (let i = 0; i < 20; i++) expect(picker.pick()!.key).toBe('e1');
    const three = endpoints(3);
    three[0]!.active = 9;
    three[1]!.active = 9;
    const counts: Record<string, number> = {};
    const p3 = leastRequestPicker(three, () => false);
    for (let i = 0; i < 300; i++) {
      const key = p3.pick()!.key;
      counts[key] = (counts[key] ?? 0) + 1;
    }
    expect(counts.e2).toBeGreaterThan(150);
  });

  it('ignores ejection when every endpoint is ejected, and empty sets pick nothing', () => {
    expect(randomPicker(endpoints(2), () => true).pick()).toBeDefined();
    expect(leastRequestPicker(endpoints(3), () => true).pick()).toBeDefined();
    expect(roundRobinPicker([], () => false).pick()).toBeUndefined();
  });
});
