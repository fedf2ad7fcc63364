import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/log.js';
import { createTestPki, type TestPki } from '../../test/identity/pki.js';
import { SignError, type CsrSigner } from './control-plane-signer.js';
import { IssuedIdentityProvider } from './issued.js';
import type { RenewalTiming } from './renewal.js';

let pki: TestPki;
beforeAll(async () => {
  pki = await createTestPki();
});
afterAll(async () => {
  await pki?.close();
});

const HOUR = 3_600_000;

/** A control plane that signs while `up`, and records every CSR it is sent. */
function fakeControlPlane() {
  const cp = { up: true, csrs: [] as string[] };
  const sign: CsrSigner = async (csrPem) => {
    cp.csrs.push(csrPem);
    if (!cp.up) throw new SignError('control plane at 127.0.0.1:15012 could not be reached: connect ECONNREFUSED', grpc.status.UNAVAILABLE);
    const leaf = pki.ca.signCsr(csrPem, 'orders');
    return { certPem: leaf.certPem, bundlePem: pki.ca.bundlePem };
  };
  return { cp, sign };
}

describe('issued identity', () => {
  it('renews at once on renewIfDue() when the renewal time passed while the control plane was away, with the key of the failed tries', async () => {
    let clock = Date.now();
    // Renewal due a minute after issue; a failed try waits an hour, as a long backoff would.
    const timing: RenewalTiming = { renewIn: (issuedAt, _notAfter, now) => issuedAt + 60_000 - now, retryIn: () => HOUR };
    const { cp, sign } = fakeControlPlane();
    const provider = new IssuedIdentityProvider({ service: 'orders', sign, logger: createLogger('test', 'silent'), timing, now: () => clock });
    try {
      await provider.start();
      const first = provider.current()!;
      expect(provider.due).toBe(false);
      // Not due: nothing is asked.
      await provider.renewIfDue();
      expect(cp.csrs).toHaveLength(1);

      // The control plane goes away; the renewal time passes and the tries fail.
      cp.up = false;
      clock += 2 * 60_000;
      expect(provider.due).toBe(true);
      await expect(provider.renewNow()).rejects.toThrow(/could not be reached/);
      await expect(provider.renewNow()).rejects.toThrow(/could not be reached/);
      expect(provider.current()).toBe(first);

      // Back: renewIfDue does not wait out the hour of backoff.
      cp.up = true;
      await provider.renewIfDue();
      expect(provider.current()!.certPem).not.toBe(first.certPem);
      expect(provider.due).toBe(false);
      // One key for the tries of one renewal (the CSR is the same), a new one for the next renewal.
      expect(cp.csrs).toHaveLength(4);
      expect(new Set(cp.csrs.slice(1)).size).toBe(1);
      clock += 2 * 60_000;
      await provider.renewIfDue();
      expect(cp.csrs).toHaveLength(5);
      expect(cp.csrs[4]).not.toBe(cp.csrs[3]);
    } finally {
      await provider.close();
    }
  });

  it('fails its start on a refusal that comes once an unreachable control plane is back, instead of retrying for ever', async () => {
    const refusals: string[] = [];
    let calls = 0;
    const sign: CsrSigner = async () => {
      if (++calls === 1) throw new SignError('control plane at 127.0.0.1:15012 could not be reached: connect ECONNREFUSED', grpc.status.UNAVAILABLE);
      refusals.push('refused');
      throw new SignError('refused the CSR: bootstrap token is revoked', grpc.status.UNAUTHENTICATED);
    };
    let retries = 0;
    const timing: RenewalTiming = { renewIn: () => HOUR, retryIn: () => (++retries === 1 ? 10 : HOUR) };
    const provider = new IssuedIdentityProvider({ service: 'orders', sign, logger: createLogger('test', 'silent'), timing });
    try {
      // The first try finds no control plane; the retry finds it back, refusing the token.
      await expect(provider.start()).rejects.toThrow(/bootstrap token is revoked/);
      expect(refusals).toHaveLength(1);
      expect(retries).toBe(1); // no retry scheduled after the refusal
      expect(provider.current()).toBeUndefined();
    } finally {
      await provider.close();
    }
  });

  it('takes the control plane’s trust domains as a new identity only when they change what peers may be, and keeps them across renewals', async () => {
    let clock = Date.now();
    const timing: RenewalTiming = { renewIn: (issuedAt, _notAfter, now) => issuedAt + 60_000 - now, retryIn: () => HOUR };
    const { sign } = fakeControlPlane();
    const provider = new IssuedIdentityProvider({ service: 'orders', sign, logger: createLogger('test', 'silent'), timing, now: () => clock });
    const changes: (readonly string[] | undefined)[] = [];
    provider.onChange((identity) => changes.push(identity.peerTrustDomains));
    try {
      await provider.start();
      provider.acceptTrustDomains(['skein.local']); // its own: nothing new
      expect(changes).toHaveLength(1);
      provider.acceptTrustDomains(['new.example', 'skein.local']);
      expect(changes.at(-1)).toEqual(['new.example', 'skein.local']);
      provider.acceptTrustDomains(['new.example', 'skein.local']);
      expect(changes).toHaveLength(2);
      clock += 2 * 60_000;
      await provider.renewIfDue();
      expect(changes).toHaveLength(3);
      expect(provider.current()!.peerTrustDomains).toEqual(['new.example', 'skein.local']);
    } finally {
      await provider.close();
    }
  });
});
