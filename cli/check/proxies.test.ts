import { describe, expect, it } from 'vitest';
import { judgeConnected, judgeConvergence, judgeRunsWithout, judgeWorkloadCertificates, type ProxiesAnswer, type ProxyAnswer } from './proxies.js';

const NOW = Date.parse('2026-12-08T00:00:00.000Z');
const HOUR = 60 * 60 * 1000;

function proxy(instance: string, fields: Partial<ProxyAnswer> = {}): ProxyAnswer {
  return {
    id: instance, service: 'web', instance, version: 'v1', address: '127.0.0.1:15006', state: 'SYNCED', ackedVersion: '42', ackedAt: null, nackedVersion: null, nackReason: null,
    connectedAt: '2026-12-07T00:00:00.000Z', certExpiry: null, spiffeId: null, certRootFingerprint: null, trustBundleFingerprint: null, runsWithout: [], ...fields,
  };
}

const mesh = (...proxies: ProxyAnswer[]): ProxiesAnswer => ({ snapshotVersion: '42', proxies });

describe('judgeConnected', () => {
  it('warns with no sidecar connected', () => {
    expect(judgeConnected(mesh()).status).toBe('warning');
    expect(judgeConnected(mesh(proxy('web-1'), proxy('web-2'), proxy('api-1', { service: 'api' })))).toMatchObject({ status: 'ok', message: '3 sidecars of 2 services connected' });
  });
});

describe('judgeConvergence', () => {
  it('is ok when every sidecar runs the current snapshot', () => {
    expect(judgeConvergence(mesh(proxy('web-1'), proxy('web-2')))).toMatchObject({ status: 'ok', message: 'every connected sidecar runs snapshot 42' });
  });

  it('warns of sidecars behind, naming the snapshot each runs', () => {
    const result = judgeConvergence(mesh(proxy('web-1'), proxy('web-2', { state: 'STALE', ackedVersion: '41' }), proxy('web-3', { state: 'STALE', ackedVersion: null })));
    expect(result).toMatchObject({ status: 'warning', message: 'config has not converged on snapshot 42: 2 behind', details: ['web-2 (web) runs snapshot 41', 'web-3 (web) has not ACKed any snapshot yet'] });
  });

  it('fails on a current NACK, with its reason, and still lists those behind', () => {
    const result = judgeConvergence(mesh(proxy('web-1', { state: 'NACKED', ackedVersion: '41', nackedVersion: '42', nackReason: 'services.web.timeout: too long' }), proxy('web-2', { state: 'STALE', ackedVersion: '41' })));
    expect(result).toMatchObject({
      status: 'failure',
      message: 'config has not converged on snapshot 42: 1 sidecar NACKed, 1 behind',
      details: ['web-1 (web) NACKed snapshot 42: services.web.timeout: too long', 'web-2 (web) runs snapshot 41'],
    });
  });
});

describe('judgeWorkloadCertificates', () => {
  const expiring = (hours: number) => new Date(NOW + hours * HOUR).toISOString();

  it('is ok for leaves not yet past their renewal time (a quarter of their life left), warns past it, fails once expired', () => {
    // A 24 h leaf renews at 16 h, with 8 h left; 6 h left is past that.
    expect(judgeWorkloadCertificates(mesh(proxy('web-1', { certExpiry: expiring(6) })), 24 * HOUR, NOW).status).toBe('ok');
    expect(judgeWorkloadCertificates(mesh(proxy('web-1', { certExpiry: expiring(5.9) })), 24 * HOUR, NOW)).toMatchObject({ status: 'warning', details: [`web-1 (web): expires at ${expiring(5.9)}`] });
    expect(judgeWorkloadCertificates(mesh(proxy('web-1', { certExpiry: expiring(0) }), proxy('web-2', { certExpiry: expiring(1) })), 24 * HOUR, NOW)).toMatchObject({ status: 'failure', details: [`web-1 (web): expired at ${expiring(0)}`, `web-2 (web): expires at ${expiring(1)}`] });
  });

  it('scales with the leaf lifetime the CA names, a day when it names none', () => {
    expect(judgeWorkloadCertificates(mesh(proxy('web-1', { certExpiry: expiring(1) })), 2 * HOUR, NOW).status).toBe('ok');
    expect(judgeWorkloadCertificates(mesh(proxy('web-1', { certExpiry: expiring(5) })), undefined, NOW).status).toBe('warning');
  });

  it('skips sidecars without a certificate', () => {
    expect(judgeWorkloadCertificates(mesh(proxy('web-1')), 24 * HOUR, NOW)).toMatchObject({ status: 'ok', message: 'no connected sidecar reports a workload certificate' });
  });
});

describe('judgeRunsWithout', () => {
  it('warns of sidecars that run without features of the config, naming what each loses', () => {
    expect(judgeRunsWithout(mesh(proxy('web-1'), proxy('web-2', { runsWithout: undefined }))).status).toBe('ok');
    const result = judgeRunsWithout(mesh(proxy('web-1', { runsWithout: ['web: not rate limited by this instance', 'api: no failover (v1)'] })));
    expect(result).toMatchObject({ status: 'warning', message: '1 sidecar older than the config runs without some of it', details: ['web-1 (web): web: not rate limited by this instance; api: no failover (v1)'] });
  });
});
