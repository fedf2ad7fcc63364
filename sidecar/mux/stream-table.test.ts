import { describe, expect, it } from 'vitest';
import { StreamTable } from './stream-table.js';

describe('StreamTable', () => {
  it('agrees with a Map through random sets, gets and deletes, across growth, for sequential and arbitrary u32 ids', () => {
    let seed = 7;
    const random = (): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    const table = new StreamTable<string>(4);
    const model = new Map<number, string>();
    let next = 1;
    const ids = (): number[] => [...model.keys()];
    for (let step = 0; step < 60_000; step++) {
      const r = random();
      if (r < 0.45) {
        // Mostly the next odd id, as a client opens them; sometimes any u32, 0 and 2^32-1 included.
        const id = random() < 0.8 ? (next += 2) : [0, 2 ** 32 - 1, Math.floor(random() * 2 ** 32)][Math.floor(random() * 3)]!;
        table.set(id, `v${step}`);
        model.set(id, `v${step}`);
      } else if (r < 0.9) {
        const live = ids();
        const id = live.length > 0 && random() < 0.9 ? live[Math.floor(random() * live.length)]! : next + 1;
        expect(table.delete(id)).toBe(model.delete(id));
      } else {
        const id = random() < 0.5 && model.size > 0 ? ids()[0]! : next + 3;
        expect(table.get(id)).toBe(model.get(id));
        expect(table.has(id)).toBe(model.has(id));
      }
      expect(table.size).toBe(model.size);
      // Many streams at once, now and then: the table grows past its first capacity.
      if (step % 20_000 === 0) for (let k = 0; k < 1500; k++) {
        table.set((next += 2), 'burst');
        model.set(next, 'burst');
      }
    }
    for (const [id, value] of model) expect(table.get(id)).toBe(value);
    expect(table.values().sort()).toEqual([...model.values()].sort());
    table.clear();
    expect(table.size).toBe(0);
    expect(table.values()).toEqual([]);
    expect(table.get(next)).toBeUndefined();
  });

  it('keeps nothing of a deleted stream', () => {
    const table = new StreamTable<object>();
    const stream = {};
    table.set(1, stream);
    table.delete(1);
    expect((table as unknown as { slots: unknown[] }).slots).not.toContain(stream);
  });
});
