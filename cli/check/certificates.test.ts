import { describe, expect, it } from 'vitest';
import type { CaView } from '../answers.js';
import { judgeRoot, judgeRotation } from './certificates.js';

const NOW = Date.parse('2026-12-08T00:00:00.000Z');
const DAY = 24 * 60 * 60 * 1000;

function ca(roots: { notAfter: number; signing: boolean }[], rotation: Partial<CaView['rotation']> = {}): CaView {
  return {
    trustDomain: 'skein.local',
    roots: roots.map((r, i) => ({ subject: `CN=root ${i}`, fingerprint: `AA:0${i}:${'00:'.repeat(8)}FF`, notAfter: new Date(r.notAfter).toISOString(), signing: r.signing })),
    rotation: { phase: 'idle', rotating: false, waitingFor: [], startedAt: null, finishedAt: null, ...rotation },
  };
}

describe('judgeRoot', () => {
  it('is ok with 30 days or more left, a warning within 30 days, a failure once expired', () => {
    expect(judgeRoot(ca([{ notAfter: NOW + 30 * DAY, signing: true }]), NOW)).toMatchObject({ status: 'ok', message: expect.stringMatching(/valid until 2027-01-07T00:00:00.000Z \(30 days\)$/) });
    expect(judgeRoot(ca([{ notAfter: NOW + 30 * DAY - 1, signing: true }]), NOW)).toMatchObject({ status: 'warning', message: expect.stringMatching(/in 29 days$/), hint: expect.stringContaining('skein ca rotate') });
    expect(judgeRoot(ca([{ notAfter: NOW, signing: true }]), NOW)).toMatchObject({ status: 'failure', message: expect.stringContaining('expired at 2026-12-08T00:00:00.000Z') });
  });

  it('judges the signing root, not an old root leaving the bundle in a rotation', () => {
    const rotating = ca([{ notAfter: NOW + 5 * DAY, signing: false }, { notAfter: NOW + 3650 * DAY, signing: true }]);
    expect(judgeRoot(rotating, NOW)).toMatchObject({ status: 'ok', message: expect.stringContaining('AA:01') });
  });

  it('fails with no root at all', () => {
    expect(judgeRoot(ca([]), NOW).status).toBe('failure');
  });
});

describe('judgeRotation', () => {
  it('is ok with none running, a warning naming the sidecars a running one waits for', () => {
    expect(judgeRotation(ca([])).status).toBe('ok');
    const running = judgeRotation(ca([], { rotating: true, phase: 'reissuing', waitingFor: ['web/web-1', 'api/api-2'] }));
    expect(running).toMatchObject({ status: 'warning', message: 'root rotation in progress, phase reissuing, waiting for 2 sidecars', details: ['web/web-1', 'api/api-2'] });
  });
});
