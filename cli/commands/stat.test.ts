/** `skein stat SERVICE`'s table of what callers' sidecars hold: listed with or without traffic in the window. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { StatsView } from '../../control-plane/observability/stats.js';
import { printStats } from './stat.js';

afterEach(() => void vi.restoreAllMocks());

function printed(stats: StatsView): string[] {
  const lines: string[] = [];
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    lines.push(...String(chunk).split('\n').slice(0, -1));
    return true;
  });
  printStats(stats, 'backend', '1m');
  return lines;
}

const quiet: StatsView = {
  generatedAt: '2026-12-07T16:00:00.000Z',
  windows: ['10s', '1m'],
  bucketBoundsMs: [1, 10],
  services: [],
  edges: [],
  breakers: [{ service: 'web', instance: 'web-1', destination: 'backend', subset: 'v1', state: 'open' }],
  ejections: [{ service: 'web', instance: 'web-1', destination: 'backend', endpoint: '10.0.0.7:15006', since: '2026-12-07T15:59:00.000Z', until: '2026-12-07T16:02:00.000Z', reason: '5 consecutive errors' }],
};

describe('skein stat SERVICE', () => {
  it('lists open breakers and ejected endpoints when the service had no traffic in the window (an ejection outlasts it)', () => {
    const lines = printed(quiet);
    expect(lines[0]).toBe('no traffic to or from backend in the last minute');
    const cells = (line: string | undefined) => line?.split(/\s{2,}/);
    const breakers = lines.findIndex((l) => l.startsWith('BREAKER HELD BY'));
    expect(cells(lines[breakers + 1])).toEqual(['web web-1', 'backend', 'v1', 'open']);
    const ejections = lines.findIndex((l) => l.startsWith('EJECTED BY'));
    expect(cells(lines[ejections + 1])).toEqual(['web web-1', 'backend', '10.0.0.7:15006', '2026-12-07T16:02:00.000Z', '5 consecutive errors']);
  });
});
