/** KeepaliveTimer on fake timers with a counted probe, and on a real TLS socket's bytesRead. */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { connect as tlsConnect, createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { makeCa, makeLeaf } from '../../test/support/certs.js';
import { waitUntil } from '../../test/support/wait.js';
import { KeepaliveTimer, type Keepalive } from './keepalive.js';

/** A timer over a connection whose reads, pings and give-ups the test sees and drives. */
function watched(keepalive: Keepalive) {
  const c = { bytes: 0, pings: 0, attempts: 0, giveUps: 0, canPing: true };
  const timer = new KeepaliveTimer(
    keepalive,
    () => c.bytes,
    () => {
      c.attempts++;
      if (!c.canPing) return false;
      c.pings++;
      return true;
    },
    () => c.giveUps++,
  );
  return { c, timer };
}

describe('KeepaliveTimer', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('sends no ping while bytes arrive between ticks', () => {
    const { c, timer } = watched({ intervalMs: 100, timeoutMs: 50 });
    for (let i = 0; i < 10; i++) {
      c.bytes += 10;
      vi.advanceTimersByTime(100);
    }
    expect(c.attempts).toBe(0);
    timer.stop();
  });

  it('pings a connection silent for an interval (idle from the start too), one ping at a time', () => {
    const { c, timer } = watched({ intervalMs: 100, timeoutMs: 250 });
    vi.advanceTimersByTime(99);
    expect(c.pings).toBe(0);
    vi.advanceTimersByTime(1);
    expect(c.pings).toBe(1);
    // Two more silent ticks while the ping is out: no second one.
    vi.advanceTimersByTime(200);
    expect(c.pings).toBe(1);
    expect(c.giveUps).toBe(0);
    timer.stop();
  });

  it('gives up when nothing is read within timeoutMs of the ping', () => {
    const { c, timer } = watched({ intervalMs: 100, timeoutMs: 50 });
    vi.advanceTimersByTime(100);
    expect(c.pings).toBe(1);
    vi.advanceTimersByTime(49);
    expect(c.giveUps).toBe(0);
    vi.advanceTimersByTime(1);
    expect(c.giveUps).toBe(1);
    timer.stop();
  });

  it('takes bytes read after the ping as its answer, at the timeout', () => {
    const { c, timer } = watched({ intervalMs: 100, timeoutMs: 50 });
    vi.advanceTimersByTime(100);
    expect(c.pings).toBe(1);
    c.bytes += 17;
    vi.advanceTimersByTime(50);
    expect(c.giveUps).toBe(0);
    // The tick at 200 sees those bytes as activity; the silent one at 300 pings again.
    vi.advanceTimersByTime(100);
    expect(c.pings).toBe(1);
    vi.advanceTimersByTime(100);
    expect(c.pings).toBe(2);
    timer.stop();
  });

  it('takes bytes read after the ping as its answer, at the next tick: that ping times out no later one', () => {
    const { c, timer } = watched({ intervalMs: 100, timeoutMs: 250 });
    vi.advanceTimersByTime(100);
    expect(c.pings).toBe(1);
    c.bytes += 17;
    vi.advanceTimersByTime(200);
    expect(c.pings).toBe(2);
    // 350: the first ping's timeout, had the answer not cleared it.
    vi.advanceTimersByTime(249);
    expect(c.giveUps).toBe(0);
    vi.advanceTimersByTime(1);
    expect(c.giveUps).toBe(1);
    timer.stop();
  });

  it('arms no timeout for a ping that could not go out; the next silent tick tries again', () => {
    const { c, timer } = watched({ intervalMs: 100, timeoutMs: 50 });
    c.canPing = false;
    vi.advanceTimersByTime(300);
    expect(c.attempts).toBe(3);
    expect(c.giveUps).toBe(0);
    c.canPing = true;
    vi.advanceTimersByTime(100);
    expect(c.pings).toBe(1);
    timer.stop();
  });

  it('stop() clears the interval and the ping timeout', () => {
    const { c, timer } = watched({ intervalMs: 100, timeoutMs: 50 });
    vi.advanceTimersByTime(100);
    expect(c.pings).toBe(1);
    expect(vi.getTimerCount()).toBe(2);
    timer.stop();
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(1000);
    expect(c.pings).toBe(1);
    expect(c.giveUps).toBe(0);
  });
});

describe('KeepaliveTimer on a TLS socket', () => {
  const ca = makeCa('Keepalive Test CA');
  const leaf = makeLeaf(ca, 'server');
  const cleanups: (() => void)[] = [];
  afterEach(() => {
    for (const c of cleanups.splice(0)) c();
  });

  /** A TLS server whose accepted socket the test drives, and a client connected to it. */
  async function tlsPair(): Promise<{ client: TLSSocket; server: TLSSocket }> {
    const accepted: TLSSocket[] = [];
    const srv = createTlsServer({ key: leaf.keyPem, cert: leaf.certPem }, (s) => accepted.push(s));
    srv.listen(0, '127.0.0.1');
    await once(srv, 'listening');
    const client = tlsConnect({ host: '127.0.0.1', port: (srv.address() as AddressInfo).port, ca: ca.certPem, checkServerIdentity: () => undefined });
    cleanups.push(() => {
      client.destroy();
      for (const s of accepted) s.destroy();
      srv.close();
    });
    await once(client, 'secureConnect');
    const server = await waitUntil(() => accepted[0], { timeoutMs: 5000, what: 'the accepted socket' });
    return { client, server };
  }

  it("counts the socket's bytesRead in cleartext as each chunk arrives, not at the end", async () => {
    const { client, server } = await tlsPair();
    client.on('data', () => {});
    const before = client.bytesRead;
    server.write('abc');
    await once(client, 'data');
    expect(client.bytesRead - before).toBe(3);
    server.write('defgh');
    await once(client, 'data');
    expect(client.bytesRead - before).toBe(8);
  });

  it('keeps a connection whose peer answers, and gives up one whose peer goes silent', async () => {
    const { client, server } = await tlsPair();
    client.on('data', () => {});
    let answering = true;
    server.on('data', () => void (answering && server.write('P')));
    let pings = 0;
    let giveUps = 0;
    const timer = new KeepaliveTimer(
      { intervalMs: 20, timeoutMs: 200 },
      () => client.bytesRead,
      () => {
        pings++;
        client.write('p');
        return true;
      },
      () => giveUps++,
    );
    cleanups.push(() => timer.stop());
    await waitUntil(() => pings >= 3 || undefined, { timeoutMs: 5000, what: 'three answered pings' });
    expect(giveUps).toBe(0);
    answering = false;
    await waitUntil(() => giveUps > 0 || undefined, { timeoutMs: 5000, what: 'the give-up' });
  });
});
