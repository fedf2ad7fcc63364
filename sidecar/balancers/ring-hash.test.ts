import * as crypto from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';
import { ringHash, ringHashPicker } from './ring-hash.js';

// The MD5s the ring takes, counted.
vi.mock('node:crypto', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:crypto')>();
  return { ...actual, hash: vi.fn(actual.hash) };
});
const digests = (): number => vi.mocked(crypto.hash).mock.calls.length;

const endpoints = (n: number, from = 0) => Array.from({ length: n }, (_, i) => ({ key: `10.0.0.${from + i}:8080`, active: 0 }));
const keys = Array.from({ length: 4000 }, (_, i) => ringHash(`user-${i}`));
const healthy = () => false;

function owners(picker: ReturnType<typeof ringHashPicker<{ key: string; active: number }>>): string[] {
  return keys.map((k) => picker.pick(undefined, k)!.key);
}

describe('ring-hash balancer', () => {
  it('sends every request of a key to one endpoint, the same one whatever the order of the list', () => {
    const eps = endpoints(5);
    const a = owners(ringHashPicker(eps, healthy));
    expect(owners(ringHashPicker(eps, healthy))).toEqual(a);
    expect(owners(ringHashPicker([...eps].reverse(), healthy))).toEqual(a);
  });

  it('spreads keys about evenly', () => {
    const counts = new Map<string, number>();
    for (const key of owners(ringHashPicker(endpoints(4), healthy))) counts.set(key, (counts.get(key) ?? 0) + 1);
    expect(counts.size).toBe(4);
    // 1000 each on a perfect ring; 160 points an endpoint keep each within about a fifth of it.
    for (const count of counts.values()) {
      expect(count).toBeGreaterThan(700);
      expect(count).toBeLessThan(1300);
    }
  });

  it('moves only the keys of an endpoint that leaves, and to a new one only keys it takes', () => {
    const four = endpoints(4);
    const before = owners(ringHashPicker(four, healthy));
    const after = owners(ringHashPicker(four.slice(0, 3), healthy));
    const gone = four[3]!.key;
    for (let i = 0; i < keys.length; i++) if (before[i] !== gone) expect(after[i]).toBe(before[i]);
    const grown = owners(ringHashPicker([...four, ...endpoints(1, 4)], healthy));
    const moved = grown.filter((key, i) => key !== before[i]);
    expect(moved.every((key) => key === '10.0.0.4:8080')).toBe(true);
    // About a fifth of the keys go to the fifth endpoint.
    expect(moved.length).toBeGreaterThan(keys.length * 0.12);
    expect(moved.length).toBeLessThan(keys.length * 0.28);
  });

  it("sends an ejected endpoint's keys, and a retry's, to the next endpoint on the ring, the same for every request of the key", () => {
    const eps = endpoints(5);
    const plain = ringHashPicker(eps, healthy);
    const ejected = eps[2]!.key;
    const withEjection = ringHashPicker(eps, (key) => key === ejected);
    let movedKeys = 0;
    for (const k of keys.slice(0, 500)) {
      const owner = plain.pick(undefined, k)!;
      const now = withEjection.pick(undefined, k)!;
      expect(now.key).not.toBe(ejected);
      if (owner.key !== ejected) expect(now).toBe(owner);
      else {
        movedKeys++;
        expect(withEjection.pick(undefined, k)).toBe(now);
        // A retry away from the owner lands where an ejection of the owner would send the key.
        expect(plain.pick(owner, k)).toBe(now);
      }
    }
    expect(movedKeys).toBeGreaterThan(0);
  });

  it('sends each further retry of a key on to the next endpoint on the ring, not back to its owner', () => {
    const eps = endpoints(5);
    const picker = ringHashPicker(eps, healthy);
    for (const k of keys.slice(0, 200)) {
      const tries = [picker.pick(undefined, k)!];
      for (let t = 1; t < 5; t++) tries.push(picker.pick(tries[t - 1], k)!);
      // Five tries, five endpoints: every one of them is tried once.
      expect(new Set(tries).size).toBe(5);
    }
    // Past ejected endpoints too, and round to the owner only when the others have been tried.
    const ejected = new Set([eps[1]!.key, eps[3]!.key]);
    const withEjections = ringHashPicker(eps, (key) => ejected.has(key));
    for (const k of keys.slice(0, 200)) {
      const first = withEjections.pick(undefined, k)!;
      const second = withEjections.pick(first, k)!;
      const third = withEjections.pick(second, k)!;
      expect(new Set([first, second, third]).size).toBe(3);
      expect([first, second, third].some((e) => ejected.has(e.key))).toBe(false);
    }
  });

  it('panics to an ejected endpoint, not back to the one to avoid, when all others are ejected; and alone, picks it', () => {
    const eps = endpoints(3);
    const picker = ringHashPicker(eps, (key) => key !== eps[0]!.key);
    for (const k of keys.slice(0, 50)) {
      expect(picker.pick(undefined, k)).toBe(eps[0]);
      expect(picker.pick(eps[0], k)).not.toBe(eps[0]);
    }
    const one = endpoints(1);
    expect(ringHashPicker(one, healthy).pick(one[0], keys[0])).toBe(one[0]);
    expect(ringHashPicker([], healthy).pick(undefined, keys[0])).toBeUndefined();
  });

  it("hashes an endpoint's points once: a rebuild over the same endpoints (a reload, a snapshot changed elsewhere) hashes only new ones", () => {
    const eps = endpoints(50);
    const first = ringHashPicker(eps, healthy);
    let before = digests();
    const rebuilt = ringHashPicker([...eps].reverse(), healthy);
    expect(digests()).toBe(before);
    expect(keys.map((k) => rebuilt.pick(undefined, k))).toEqual(keys.map((k) => first.pick(undefined, k)));
    before = digests();
    ringHashPicker([...eps, ...endpoints(1, 50)], healthy);
    // 160 points, four a digest, for the one endpoint added.
    expect(digests() - before).toBe(40);
  });

  it('balances a request without a key at random', () => {
    const seen = new Set<string>();
    const picker = ringHashPicker(endpoints(3), healthy);
    for (let i = 0; i < 200; i++) seen.add(picker.pick()!.key);
    expect(seen.size).toBe(3);
  });
});
