import { describe, expect, it } from 'vitest';
import { ProxyTracker, syncState, type ProxyRecord } from './proxies.js';

function record(id: string, service = 'orders'): ProxyRecord {
  return { id, service, instanceId: `${service}-${id}`, version: 'v1', address: '127.0.0.1', inboundPort: 8080, adminPort: 0, connectedAt: 0 };
}

describe('sync state', () => {
  it('is STALE until the current version is ACKed, SYNCED after, STALE again on the next version', () => {
    const proxies = new ProxyTracker();
    proxies.add(record('a'));
    expect(proxies.view('10')[0]!.state).toBe('STALE');
    proxies.ack('a', '10', 1_000);
    expect(proxies.view('10')[0]).toMatchObject({ state: 'SYNCED', ackedVersion: '10', ackedAt: new Date(1_000).toISOString() });
    expect(proxies.view('11')[0]!.state).toBe('STALE');
  });

  it('is NACKED while the last version answered was refused, whatever the current one', () => {
    const proxies = new ProxyTracker();
    proxies.add(record('a'));
    proxies.ack('a', '10', 1_000);
    proxies.nack('a', '11', 'timeout: 7s is not allowed', 2_000);
    expect(proxies.view('11')[0]).toMatchObject({ state: 'NACKED', ackedVersion: '10', nackedVersion: '11', nackReason: 'timeout: 7s is not allowed' });
    expect(proxies.view('12')[0]!.state).toBe('NACKED');
    // A later version ACKed clears it; the last NACK stays on record.
    proxies.ack('a', '12', 3_000);
    expect(proxies.view('12')[0]).toMatchObject({ state: 'SYNCED', nackedVersion: '11' });
  });

  it('compares versions as numbers, not strings', () => {
    const r = { ...record('a'), ackedVersion: '100', nackedVersion: '99' };
    expect(syncState(r, '100')).toBe('SYNCED');
  });

  it('shows what a sidecar runs without, and nothing extra for one that runs all of it', () => {
    const proxies = new ProxyTracker();
    proxies.add(record('a'));
    proxies.add({ ...record('b', 'orders'), instanceId: 'orders-old', runsWithout: ['orders: not rate limited by this instance'] });
    expect(proxies.view('10').map((p) => [p.instance, p.runsWithout])).toEqual([
      ['orders-a', []],
      ['orders-old', ['orders: not rate limited by this instance']],
    ]);
  });

  it('forgets a removed proxy and ignores answers for unknown ids', () => {
    const proxies = new ProxyTracker();
    proxies.add(record('a'));
    proxies.add(record('b', 'cart'));
    proxies.remove('a');
    proxies.ack('a', '10', 1_000);
    expect(proxies.view('10').map((p) => p.service)).toEqual(['cart']);
  });

  it('remembers a proxy whose stream broke, as it last reported, until it reconnects or the grace period ends', () => {
    let now = 0;
    const proxies = new ProxyTracker(1_000, () => now);
    proxies.add({ ...record('a'), bundleFingerprint: 'old' });
    proxies.add(record('b', 'cart'));
    proxies.remove('a', false);
    proxies.remove('b', true); // a goodbye: it shut down, nothing to wait for
    expect(proxies.all()).toEqual([]);
    expect(proxies.lost().map((p) => [p.id, p.bundleFingerprint])).toEqual([['a', 'old']]);
    now = 999;
    expect(proxies.lost()).toHaveLength(1);
    now = 1_000;
    expect(proxies.lost()).toEqual([]);

    proxies.add(record('a2'));
    proxies.remove('a2', false);
    // The same instance back on a new stream replaces what was remembered.
    proxies.add({ ...record('a3'), instanceId: 'orders-a2' });
    expect(proxies.lost()).toEqual([]);
    // A stream that breaks after its replacement connected loses nothing.
    proxies.add({ ...record('a4'), instanceId: 'orders-a2' });
    proxies.remove('a3', false);
    expect(proxies.lost()).toEqual([]);
  });
});
