import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { waitUntil } from '../../test/support/wait.js';
import { createCsrPem } from '../../common/identity/csr.js';
import { generateRsaKeyPair, type KeyPairPem } from '../../common/identity/keys.js';
import { createLogger } from '../../common/log.js';
import { certStatusOf } from '../../sidecar/identity/cert-status.js';
import { CertificateAuthority } from './authority.js';
import { RootRotation, type Fleet, type ProxyCertState } from './rotation.js';

/** A sidecar as the rotation sees it: renews through the CA when asked, reports CertStatus. */
class FakeProxy {
  state: ProxyCertState;
  constructor(
    readonly id: string,
    private readonly ca: CertificateAuthority,
    private readonly keys: KeyPairPem,
  ) {
    this.state = { id };
  }
  renew(): void {
    const leaf = this.ca.signCsr(createCsrPem(this.keys.privateKeyPem, this.keys.publicKeyPem, 'svc'), 'svc');
    const status = certStatusOf({ certPem: leaf.certPem, keyPem: this.keys.privateKeyPem, caPem: leaf.bundlePem, notAfter: leaf.notAfter });
    this.state = { id: this.id, ...status };
  }
}

let dir: string;
let rotation: RootRotation | undefined;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'skein-rot-'));
});
afterEach(async () => {
  rotation?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('RootRotation', () => {
  it('takes each step only after every proxy caught up, and finishes with the new root alone', async () => {
    const ca = await CertificateAuthority.open({ dataDir: dir, trustDomain: 'skein.local' });
    const keys = await generateRsaKeyPair();
    const proxies = [new FakeProxy('a', ca, keys), new FakeProxy('b', ca, keys)];
    for (const p of proxies) p.renew();
    const oldRoot = ca.signingRootFingerprint;

    // Proxy b renews only when the test lets it, to prove the rotation waits for it.
    let holdB = true;
    const asked: string[][] = [];
    const fleet: Fleet = {
      proxies: () => proxies.map((p) => p.state),
      requestRenewal: (ids) => {
        asked.push([...ids]);
        for (const p of proxies) if (ids.includes(p.id) && !(holdB && p.id === 'b')) p.renew();
      },
    };
    rotation = new RootRotation(ca, fleet, createLogger('test', 'silent'), { pollMs: 10, resendMs: 20 });
    await rotation.start();
    expect(rotation.status().phase).toBe('staged');
    await waitUntil(() => rotation!.status().waitingFor.join() === 'b', { what: 'a to take the new bundle' });
    // b still runs the old bundle: leaves must keep coming from the old root.
    await new Promise((r) => setTimeout(r, 100));
    expect(ca.phase).toBe('staged');
    expect(ca.signingRootFingerprint).toBe(oldRoot);

    holdB = false;
    await waitUntil(() => ca.phase === 'stable', { what: 'the rotation to finish' });
    const status = rotation.status();
    expect(status.rotating).toBe(false);
    expect(status.finishedAt).not.toBeNull();
    expect(ca.signingRootFingerprint).not.toBe(oldRoot);
    // After the last step every proxy was asked to pick up the final bundle.
    await waitUntil(() => proxies.every((p) => p.state.bundleFingerprint === ca.bundleFingerprint), { what: 'proxies to run the final bundle' });
    expect(proxies.every((p) => p.state.rootFingerprint === ca.signingRootFingerprint)).toBe(true);
    expect(asked.some((ids) => ids.includes('b'))).toBe(true);
  });

  it('keeps the old root in the bundle until every proxy runs a leaf from the new root', async () => {
    const ca = await CertificateAuthority.open({ dataDir: dir, trustDomain: 'skein.local' });
    const keys = await generateRsaKeyPair();
    const proxies = [new FakeProxy('a', ca, keys), new FakeProxy('b', ca, keys)];
    for (const p of proxies) p.renew();
    const oldRootPem = ca.bundlePem;
    // b takes the staged bundle, then lags once leaves come from the new root.
    let holdB = false;
    const fleet: Fleet = {
      proxies: () => proxies.map((p) => p.state),
      requestRenewal: (ids) => {
        if (ca.phase === 'switched') holdB = holdB || ids.includes('b');
        for (const p of proxies) if (ids.includes(p.id) && !(holdB && p.id === 'b')) p.renew();
      },
    };
    rotation = new RootRotation(ca, fleet, createLogger('test', 'silent'), { pollMs: 10, resendMs: 20 });
    await rotation.start();
    await waitUntil(() => ca.phase === 'switched' && rotation!.status().waitingFor.join() === 'b', { what: 'only b to lag behind the switch' });
    await new Promise((r) => setTimeout(r, 100));
    expect(ca.phase).toBe('switched');
    expect(ca.bundlePem).toContain(oldRootPem.trim());

    holdB = false;
    proxies[1]!.renew();
    await waitUntil(() => ca.phase === 'stable', { what: 'the old root to be retired' });
    expect(ca.bundlePem).not.toContain(oldRootPem.trim());
  });

  it('refuses a second rotation while one runs, and after a restart resumes a persisted one only once sidecars had time to reconnect', async () => {
    const ca = await CertificateAuthority.open({ dataDir: dir, trustDomain: 'skein.local' });
    const noProxies: Fleet = { proxies: () => [], requestRenewal: () => undefined };
    // A fleet that never renews keeps the rotation parked at "staged".
    const stuck = new FakeProxy('x', ca, await generateRsaKeyPair());
    stuck.renew();
    rotation = new RootRotation(ca, { proxies: () => [stuck.state], requestRenewal: () => undefined }, createLogger('test', 'silent'), { pollMs: 10 });
    await rotation.start();
    await expect(rotation.start()).rejects.toThrow(/already in progress/);
    rotation.close();

    const reopened = await CertificateAuthority.open({ dataDir: dir, trustDomain: 'skein.local' });
    expect(reopened.phase).toBe('staged');
    // Nobody is connected yet right after the restart: that is no proof anybody caught up.
    rotation = new RootRotation(reopened, noProxies, createLogger('test', 'silent'), { pollMs: 10, settleMs: 400 });
    await new Promise((r) => setTimeout(r, 200));
    expect(reopened.phase).toBe('staged');
    expect(rotation.status().settlingUntil).not.toBeNull();
    await waitUntil(() => reopened.phase === 'stable', { what: 'the resumed rotation to finish' });
  });

  it('asks a sidecar that comes back behind the CA to renew, after the rotation too, and nobody before it reported', async () => {
    const ca = await CertificateAuthority.open({ dataDir: dir, trustDomain: 'skein.local' });
    const keys = await generateRsaKeyPair();
    const a = new FakeProxy('a', ca, keys);
    const away = new FakeProxy('away', ca, keys);
    a.renew();
    away.renew(); // an old-root leaf and the old bundle: what it had when it went away
    const fleet = [a];
    const asked: string[] = [];
    rotation = new RootRotation(ca, {
      proxies: () => fleet.map((p) => p.state),
      requestRenewal: (ids) => {
        asked.push(...ids);
        for (const p of fleet) if (ids.includes(p.id)) p.renew();
      },
    }, createLogger('test', 'silent'), { pollMs: 10, resendMs: 20 });
    await rotation.start();
    await waitUntil(() => ca.phase === 'stable', { what: 'the rotation to finish without it' });

    const unreported = new FakeProxy('unreported', ca, keys);
    fleet.push(unreported);
    await new Promise((r) => setTimeout(r, 100));
    expect(asked).not.toContain('unreported');
    fleet.push(away);
    await waitUntil(() => away.state.rootFingerprint === ca.signingRootFingerprint && away.state.bundleFingerprint === ca.bundleFingerprint, { what: 'the returning sidecar to be renewed' });
    const askedAway = asked.filter((id) => id === 'away').length;
    // Caught up, it is left alone.
    await new Promise((r) => setTimeout(r, 100));
    expect(asked.filter((id) => id === 'away').length).toBe(askedAway);
  });

  it('asks a sidecar that never catches up less and less often, and says so once', async () => {
    const ca = await CertificateAuthority.open({ dataDir: dir, trustDomain: 'skein.local' });
    // A static identity: it reports a root the CA never signed with, whatever it is asked.
    const stuck: ProxyCertState = { id: 'static-1', bundleFingerprint: 'foreign', rootFingerprint: 'foreign' };
    const askedAt: number[] = [];
    const lines: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => lines.push(line) });
    rotation = new RootRotation(ca, { proxies: () => [stuck], requestRenewal: () => askedAt.push(Date.now()) }, logger, { pollMs: 5, resendMs: 20 });
    await waitUntil(() => askedAt.length >= 6, { what: 'six requests to renew' });
    const gaps = askedAt.slice(1).map((at, i) => at - askedAt[i]!);
    // 20, 40, 80, 160, 320 ms apart (each at least the doubled wait).
    gaps.forEach((gap, i) => expect(gap, `gap ${i}`).toBeGreaterThanOrEqual(20 * 2 ** i - 5));
    expect(lines.filter((l) => l.includes('still behind the CA'))).toHaveLength(1);
  });
});
