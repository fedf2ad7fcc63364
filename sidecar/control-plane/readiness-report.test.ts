import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { reportReadiness } from './readiness-report.js';

describe('reportReadiness', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('reports at once and at each interval, on demand too, and stops for good when stopped', () => {
    let reasons = ['app: not healthy yet'];
    const reports: string[][] = [];
    const reporter = reportReadiness(() => reasons, (r) => void reports.push([...r]), 1_000);
    expect(reports).toEqual([['app: not healthy yet']]);
    expect(vi.getTimerCount()).toBe(1);
    reasons = [];
    vi.advanceTimersByTime(1_000);
    expect(reports).toEqual([['app: not healthy yet'], []]);
    reasons = ['draining'];
    reporter.check();
    expect(reports.at(-1)).toEqual(['draining']);

    reporter.stop();
    expect(vi.getTimerCount()).toBe(0);
    const count = reports.length;
    vi.advanceTimersByTime(10_000);
    expect(reports).toHaveLength(count);
    reporter.stop();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('makes check() a no-op once stopped (a renewal during the drain must not report after the stream closed)', () => {
    const reports: string[][] = [];
    let asked = 0;
    const reporter = reportReadiness(() => (asked++, ['draining']), (r) => void reports.push([...r]), 1_000);
    reporter.stop();
    const [count, calls] = [reports.length, asked];
    reporter.check();
    expect(reports).toHaveLength(count);
    expect(asked).toBe(calls);
  });
});
