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

  it('sends a retry elsewhere: the endpoint to avoid is picked only when no other is healthy', () => {
    const healthy = () => false;
    for (const factory of [leastRequestPicker, roundRobinPicker, randomPicker]) {
      for (const n of [2, 3, 5]) {
        const eps = endpoints(n);
        // A dead endpoint fails fast and keeps nothing in flight; the others are busy.
        eps.forEach((e, i) => (e.active = i === 0 ? 0 : 3));
        const picker = factory(eps, healthy);
        for (let i = 0; i < 50; i++) expect(picker.pick(eps[0])!.key, `${factory.name} over ${n}`).not.toBe('e0');
      }
      const only = endpoints(1);
      expect(factory(only, healthy).pick(only[0])!.key).toBe('e0');
      const pair = endpoints(2);
      expect(factory(pair, (key) => key === 'e1').pick(pair[0])!.key, `${factory.name} with the other ejected`).toBe('e0');
    }
  });
});
