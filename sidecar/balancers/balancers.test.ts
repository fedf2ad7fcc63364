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
    }
  });

  it('panics to ejected endpoints only when the retry would otherwise go back where it just failed', () => {
    for (const factory of [leastRequestPicker, roundRobinPicker, randomPicker]) {
      // Two endpoints, e0 ejected, e1 not: first tries go to e1 only...
      const pair = endpoints(2);
      const onlyE1 = factory(pair, (key) => key === 'e0');
      for (let i = 0; i < 20; i++) expect(onlyE1.pick()!.key, `${factory.name} first try`).toBe('e1');
      // ...and so does a retry away from e0; but a retry away from e1 goes to e0, ejected, not back to e1.
      expect(onlyE1.pick(pair[0])!.key, `${factory.name} retry away from the ejected one`).toBe('e1');
      for (let i = 0; i < 20; i++) expect(onlyE1.pick(pair[1])!.key, `${factory.name} retry away from the only one not ejected`).toBe('e0');

      // Five endpoints, e0..e2 ejected: ejected ones get nothing while e3 or e4 may be tried...
      const five = endpoints(5);
      const threeOut = factory(five, (key) => key < 'e3');
      for (let i = 0; i < 50; i++) {
        expect(['e3', 'e4'], factory.name).toContain(threeOut.pick()!.key);
        expect(threeOut.pick(five[3])!.key, factory.name).toBe('e4');
      }
      // ...and a retry away from the last one not ejected spreads over the ejected ones.
      const fourOut = factory(five, (key) => key !== 'e4');
      const seen = new Set<string>();
      for (let i = 0; i < 200; i++) seen.add(fourOut.pick(five[4])!.key);
      expect([...seen].sort(), factory.name).toEqual(['e0', 'e1', 'e2', 'e3']);

      // Everything ejected: a retry still moves away; a single endpoint is picked whatever happened.
      const allOut = factory(pair, () => true);
      for (let i = 0; i < 20; i++) expect(allOut.pick(pair[0])!.key, factory.name).toBe('e1');
      const one = endpoints(1);
      expect(factory(one, () => true).pick(one[0])!.key).toBe('e0');
    }
  });

  it('round-robin: panic retries take turns over the ejected endpoints while first tries go on', () => {
    const five = endpoints(5);
    const picker = roundRobinPicker(five, (key) => key !== 'e2');
    const panic: Record<string, number> = {};
    for (let i = 0; i < 400; i++) {
      expect(picker.pick()!.key).toBe('e2');
      const e = picker.pick(five[2])!.key;
      panic[e] = (panic[e] ?? 0) + 1;
    }
    expect(panic).toEqual({ e0: 100, e1: 100, e3: 100, e4: 100 });
  });

  it('random and least-request: panic picks spread evenly over the ejected endpoints', () => {
    const five = endpoints(5);
    for (const factory of [randomPicker, leastRequestPicker]) {
      const picker = factory(five, (key) => key !== 'e2');
      const panic: Record<string, number> = {};
      for (let i = 0; i < 4000; i++) {
        const e = picker.pick(five[2])!.key;
        panic[e] = (panic[e] ?? 0) + 1;
      }
      expect(Object.keys(panic).sort(), factory.name).toEqual(['e0', 'e1', 'e3', 'e4']);
      // 1000 each expected; the endpoint after e2 in the array got about twice the others' share before.
      for (const [key, count] of Object.entries(panic)) expect(Math.abs(count - 1000), `${factory.name} ${key}`).toBeLessThan(200);
    }
  });
});

