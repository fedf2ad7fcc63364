import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { outlierPolicy } from '../../common/config/schema.js';
import { OutlierDetector } from './outlier.js';

function make(policy: object, keys: string[]) {
  const ejections: string[] = [];
  let changes = 0;
  const d = new OutlierDetector(outlierPolicy.parse(policy), { onEject: (k) => ejections.push(k), onChange: () => changes++ });
  d.setEndpoints(keys);
  return { d, ejections, changes: () => changes };
}

function fail(d: OutlierDetector, key: string, times: number): void {
  for (let i = 0; i < times; i++) d.record(key, true);
}

describe('OutlierDetector', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('ejects an endpoint after consecutiveErrors failures in a row, not before', () => {
    const { d, ejections } = make({ consecutiveErrors: 3, baseEjectionTime: '30s' }, ['a', 'b', 'c', 'd']);
    fail(d, 'a', 2);
    expect(d.isEjected('a')).toBe(false);
    d.record('a', false); // a success resets the streak
    fail(d, 'a', 2);
    expect(d.isEjected('a')).toBe(false);
    fail(d, 'a', 1);
    expect(d.isEjected('a')).toBe(true);
    expect(d.isEjected('b')).toBe(false);
    expect(ejections).toEqual(['a']);
  });

  it('returns an endpoint after baseEjectionTime x ejections, so ejection time grows', () => {
    const { d, changes } = make({ consecutiveErrors: 1, baseEjectionTime: '10s' }, ['a', 'b']);
    fail(d, 'a', 1);
    vi.advanceTimersByTime(9_999);
    expect(d.isEjected('a')).toBe(true);
    vi.advanceTimersByTime(1);
    expect(d.isEjected('a')).toBe(false);
    expect(changes()).toBe(2); // ejected, then returned by the timer
    fail(d, 'a', 1); // second ejection: 20 s
    vi.advanceTimersByTime(19_999);
    expect(d.isEjected('a')).toBe(true);
    vi.advanceTimersByTime(1);
    expect(d.isEjected('a')).toBe(false);
    fail(d, 'a', 1); // third: 30 s
    expect(d.state().find((s) => s.key === 'a')).toMatchObject({ ejections: 3, ejectedUntil: Date.now() + 30_000 });
  });

  it('says since when and why an endpoint is ejected while it is, and nothing of it once it is back', () => {
    const { d } = make({ consecutiveErrors: 3, baseEjectionTime: '10s' }, ['a', 'b']);
    const start = Date.now();
    fail(d, 'a', 3);
    vi.advanceTimersByTime(4_000);
    expect(d.state().find((s) => s.key === 'a')).toEqual({ key: 'a', consecutiveErrors: 3, ejections: 1, ejectedSince: start, ejectedUntil: start + 10_000, ejectionReason: '3 consecutive errors' });
    vi.advanceTimersByTime(6_000);
    expect(d.state().find((s) => s.key === 'a')).toEqual({ key: 'a', consecutiveErrors: 0, ejections: 1 });
  });

  it('caps one ejection at 300 s and decays the count while the endpoint behaves', () => {
    const { d } = make({ consecutiveErrors: 1, baseEjectionTime: '100s', maxEjectionPercent: 50 }, ['a', 'b']);
    const ejectFor = (): number => {
      fail(d, 'a', 1);
      const until = d.state().find((s) => s.key === 'a')!.ejectedUntil! - Date.now();
      vi.advanceTimersByTime(until);
      expect(d.isEjected('a')).toBe(false);
      return until;
    };
    expect([ejectFor(), ejectFor(), ejectFor(), ejectFor()]).toEqual([100_000, 200_000, 300_000, 300_000]);
    // Back and healthy: each 100 s of good behaviour takes one ejection off the count.
    for (let i = 0; i < 3; i++) {
      vi.advanceTimersByTime(100_000);
      d.record('a', false);
    }
    expect(d.state().find((s) => s.key === 'a')!.ejections).toBe(1);
    expect(ejectFor()).toBe(200_000);
  });

  it('never ejects more than maxEjectionPercent of the endpoints', () => {
    const { d } = make({ consecutiveErrors: 1, maxEjectionPercent: 50 }, ['a', 'b', 'c', 'd', 'e']);
    for (const key of ['a', 'b', 'c', 'd', 'e']) fail(d, key, 3);
    expect(d.ejectedCount).toBe(2); // floor(5 * 50%)
    expect(['a', 'b', 'c', 'd', 'e'].filter((k) => d.isEjected(k))).toEqual(['a', 'b']);
  });

  it('ejects one of three at 34% but never the only endpoint', () => {
    const three = make({ consecutiveErrors: 1, maxEjectionPercent: 34 }, ['a', 'b', 'c']);
    fail(three.d, 'a', 1);
    fail(three.d, 'b', 1);
    expect(three.d.ejectedCount).toBe(1);
    const one = make({ consecutiveErrors: 1, maxEjectionPercent: 50 }, ['a']);
    fail(one.d, 'a', 10);
    expect(one.d.isEjected('a')).toBe(false);
    const all = make({ consecutiveErrors: 1, maxEjectionPercent: 100 }, ['a']);
    fail(all.d, 'a', 1);
    expect(all.d.isEjected('a')).toBe(true);
  });

  it('ejects a failing endpoint once a slot frees up', () => {
    const { d } = make({ consecutiveErrors: 2, baseEjectionTime: '5s', maxEjectionPercent: 50 }, ['a', 'b']);
    fail(d, 'a', 2);
    fail(d, 'b', 2);
    expect(d.isEjected('b')).toBe(false);
    vi.advanceTimersByTime(5_000);
    fail(d, 'b', 1); // still failing consecutively
    expect(d.isEjected('b')).toBe(true);
  });

  it('returns an ejected endpoint at once when an attempt sent to it while ejected (panic routing) succeeds', () => {
    const { d, changes } = make({ consecutiveErrors: 2, baseEjectionTime: '30s', maxEjectionPercent: 50 }, ['a', 'b']);
    fail(d, 'a', 2);
    expect(d.isEjected('a')).toBe(true);
    // b dies while a is ejected: the cap keeps b in, however often it fails.
    fail(d, 'b', 3);
    expect(d.isEjected('b')).toBe(false);
    // A late success of an attempt sent to a before its ejection proves nothing.
    d.record('a', false);
    expect(d.isEjected('a')).toBe(true);
    // A retry moving away from b went to a, ejected, and a answered: a is back...
    d.record('a', false, d.ejection('a'));
    expect(d.isEjected('a')).toBe(false);
    expect(d.state().find((s) => s.key === 'a')).toEqual({ key: 'a', consecutiveErrors: 0, ejections: 1 });
    expect(changes()).toBe(2); // ejected, returned
    // ...and its place under maxEjectionPercent goes to b on its next failure.
    fail(d, 'b', 1);
    expect(d.isEjected('b')).toBe(true);
    // A failure of a panic-routed attempt changes nothing: a stays ejected until its time is up.
    const other = make({ consecutiveErrors: 1, baseEjectionTime: '30s', maxEjectionPercent: 50 }, ['a', 'b']);
    fail(other.d, 'a', 1);
    other.d.record('a', true, other.d.ejection('a'));
    expect(other.d.isEjected('a')).toBe(true);
    expect(other.d.state().find((s) => s.key === 'a')!.ejections).toBe(1);
  });

  it('a success of a try sent during an earlier ejection does not end a later one', () => {
    const { d } = make({ consecutiveErrors: 1, baseEjectionTime: '30s', maxEjectionPercent: 50 }, ['a', 'b']);
    fail(d, 'a', 1);
    const first = d.ejection('a');
    expect(first).toBeGreaterThan(0);
    vi.advanceTimersByTime(30_000); // the first ejection ends...
    expect(d.isEjected('a')).toBe(false);
    fail(d, 'a', 1); // ...and a second, longer one begins
    expect(d.ejection('a')).toBeGreaterThan(first);
    d.record('a', false, first); // a slow try from the first ejection answers now
    expect(d.isEjected('a')).toBe(true);
  });

  it('drops state of endpoints that left the set', () => {
    const { d } = make({ consecutiveErrors: 1, maxEjectionPercent: 100 }, ['a', 'b']);
    fail(d, 'a', 1);
    d.setEndpoints(['b', 'c']);
    expect(d.isEjected('a')).toBe(false);
    expect(d.state().map((s) => s.key)).toEqual(['b', 'c']);
    d.record('zzz', true); // unknown keys are ignored
    expect(d.ejectedCount).toBe(0);
  });
});
