import { describe, expect, it } from 'vitest';
import { areaOf, formatSummary, summarizeProfile, type CpuProfile } from './profile-summary.js';

const frame = (functionName: string, url: string, lineNumber = -1) => ({ functionName, url, lineNumber });

const profile: CpuProfile = {
  nodes: [
    { id: 1, callFrame: frame('(root)', '') },
    { id: 2, callFrame: frame('(idle)', '') },
    { id: 3, callFrame: frame('send', 'file:///work/main/dist/sidecar/exchange.js', 268) },
    { id: 4, callFrame: frame('writeH1', 'file:///work/main/node_modules/undici/lib/dispatcher/client-h1.js', 1142) },
    { id: 5, callFrame: frame('writev', '') },
    { id: 6, callFrame: frame('fire', 'file:///work/main/node_modules/@scope/pkg/index.js', 10) },
  ],
  samples: [2, 3, 4, 4, 5, 5, 5, 2, 6],
  timeDeltas: [5000, 1000, 1000, 1000, 2000, 2000, 2000, 5000, 1000],
};

describe('summarizeProfile', () => {
  it('splits self time by function and area, idle left out of the shares', () => {
    const s = summarizeProfile(profile);
    expect(s.idleMs).toBe(10);
    expect(s.busyMs).toBe(10);
    expect(s.functions[0]).toEqual({ name: 'writev native writev', ms: 6, share: 0.6 });
    expect(s.functions.map((r) => r.name)).toContain('send skein:sidecar/exchange.js:269');
    expect(Object.fromEntries(s.areas.map((r) => [r.name, r.ms]))).toEqual({
      'native writev': 6,
      'npm:undici': 2,
      'skein:sidecar/exchange.js': 1,
      'npm:@scope/pkg': 1,
    });
  });

  it('keeps only the top rows', () => {
    expect(summarizeProfile(profile, 2).functions).toHaveLength(2);
  });

  it('formats shares as percentages', () => {
    expect(formatSummary(summarizeProfile(profile))).toContain('60.0%  writev native writev');
  });
});

describe('areaOf', () => {
  it('names V8 pseudo-frames and Node modules as they are', () => {
    expect(areaOf(frame('(garbage collector)', ''))).toBe('(garbage collector)');
    expect(areaOf(frame('emit', 'node:events'))).toBe('node:events');
  });
});
