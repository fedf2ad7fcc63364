/**
 * An identity issued by the control plane's CA: the private key is generated here and never
 * leaves the process; a CSR goes out through a `CsrSigner` (a bootstrap token the first time,
 * the current certificate afterwards) and the leaf plus trust bundle come back. The leaf is
 * renewed on a `RenewalTiming` schedule, or at once on `renewNow()` (the control plane's
 * `renew-cert` command during a root rotation) and on `renewIfDue()` (the push stream is back
 * after an outage that left the leaf expired or past its renewal time); each new identity is
 * announced to the listeners, which swap TLS contexts for new connections while open ones
 * finish.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { createCsrPem } from '../../common/identity/csr.js';
import { generateRsaKeyPair, type KeyPairPem } from '../../common/identity/keys.js';
import { parseServiceSpiffeId, spiffeIdOf } from '../../common/identity/spiffe.js';
import type { Logger } from '../../common/log.js';
import { SignError, type CsrSigner } from './control-plane-signer.js';
import type { IdentityProvider, TlsIdentity } from './provider.js';
import { defaultRenewalTiming, type RenewalTiming } from './renewal.js';
import { peerTrustDomainsOf } from './tls-options.js';

export interface IssuedIdentityOptions {
  readonly service: string;
  readonly sign: CsrSigner;
  readonly logger: Logger;
  readonly timing?: RenewalTiming;
  readonly now?: () => number;
}

export class IssuedIdentityProvider implements IdentityProvider {
  private identity: TlsIdentity | undefined;
  private readonly listeners: ((identity: TlsIdentity) => void)[] = [];
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;
  private failures = 0;
  /** When the current certificate is due for renewal (ms since the epoch); nothing is due before the first. */
  private renewAt = Number.POSITIVE_INFINITY;
  /**
   * The key for the next certificate, generated ahead so a renewal does not wait for it, and
   * kept through failed attempts until a certificate for it is received (a failed attempt may
   * still have been signed by the CA, its answer lost: a retry then asks again for the same key).
   */
  private nextKeys: Promise<KeyPairPem> | undefined;
  private closed = false;
  /** start()'s promise, until the first certificate or a refusal settles it. */
  private first: { resolve: () => void; reject: (err: Error) => void } | undefined;
  private readonly timing: RenewalTiming;
  private readonly now: () => number;
  /** The trust domains the control plane takes identities from (its own, then its aliases), kept across renewals. */
  private peerTrustDomains: readonly string[] = [];

  constructor(private readonly options: IssuedIdentityOptions) {
    this.timing = options.timing ?? defaultRenewalTiming();
    this.now = options.now ?? Date.now;
  }

  current(): TlsIdentity | undefined {
    return this.identity;
  }

  onChange(listener: (identity: TlsIdentity) => void): void {
    this.listeners.push(listener);
  }

  /**
   * Resolves with the first certificate. A control plane that is not reachable yet is
   * waited for (retrying with backoff); a refusal (bad token, foreign identity) rejects,
   * since retrying would not change the answer: also when it comes from a control plane
   * that was away at the first attempt.
   */
  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.first = { resolve, reject };
      this.renewNow().catch(() => undefined); // settles `first`
    });
  }

  /**
   * The certificate is expired or past its renewal time: a renewal failed (the control plane
   * was away) or is late. No certificate yet counts as due too.
   */
  get due(): boolean {
    return this.identity === undefined || this.now() >= this.renewAt;
  }

  /**
   * Renews at once if the certificate is `due`, instead of waiting out the retry backoff of
   * failed renewals: called when the control plane is reachable again. A renewal already in
   * flight is waited for first (it may have failed against the control plane still away).
   */
  async renewIfDue(): Promise<void> {
    if (this.inFlight) await this.inFlight.catch(() => undefined);
    if (!this.closed && this.due) await this.renewNow();
  }

  /**
   * The control plane's trust domains (TRUST_DOMAINS_COMMAND): peers' identities may be in any
   * of them, e.g. while the mesh moves to another one, half the sidecars renewed into it. A
   * change is announced as a new identity, whose TLS settings take effect for new connections.
   */
  acceptTrustDomains(trustDomains: readonly string[]): void {
    this.peerTrustDomains = trustDomains;
    const identity = this.identity;
    if (identity === undefined) return;
    const next = { ...identity, peerTrustDomains: trustDomains };
    if (peerTrustDomainsOf(next).join() === peerTrustDomainsOf(identity).join()) return;
    this.identity = next;
    for (const listener of this.listeners) listener(next);
  }

  /** Requests a new certificate now; concurrent calls share one request. */
  renewNow(): Promise<void> {
    this.inFlight ??= this.renew().finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
  }

  private async renew(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    try {
      const next = await this.issue();
      if (this.closed) return;
      this.failures = 0;
      this.identity = next;
      this.nextKeys = undefined;
      this.keys().catch(() => undefined); // the next renewal's key, generated now; a failure is met again then
      const issuedAt = this.now();
      const delay = this.timing.renewIn(issuedAt, next.notAfter.getTime(), issuedAt);
      this.renewAt = issuedAt + delay;
      this.schedule(delay);
      for (const listener of this.listeners) listener(next);
      this.first?.resolve();
      this.first = undefined;
    } catch (err) {
      if (this.closed) return;
      if (this.first !== undefined && err instanceof SignError && err.permanent) {
        this.first.reject(err);
        this.first = undefined;
        throw err;
      }
      this.failures++;
      const notAfter = this.identity?.notAfter.getTime() ?? Number.POSITIVE_INFINITY;
      const delay = this.timing.retryIn(this.failures, notAfter, this.now());
      this.options.logger.warn({ err: (err as Error).message, attempt: this.failures, retryInMs: Math.round(delay) }, 'certificate request failed');
      this.schedule(delay);
      throw err;
    }
  }

  private schedule(delayMs: number): void {
    if (this.closed) return;
    this.timer = setTimeout(() => {
      this.renewNow().catch(() => undefined); // logged in renew()
    }, delayMs);
    // Before the first certificate this retry is all the process waits on: keep it alive.
    if (this.identity) this.timer.unref();
  }

  /** The key pair for the next certificate: the one in hand, else a new one. */
  private keys(): Promise<KeyPairPem> {
    if (!this.nextKeys) {
      const pending = generateRsaKeyPair();
      this.nextKeys = pending;
      pending.catch(() => {
        if (this.nextKeys === pending) this.nextKeys = undefined;
      });
    }
    return this.nextKeys;
  }

  private async issue(): Promise<TlsIdentity> {
    const keys = await this.keys();
    const csr = createCsrPem(keys.privateKeyPem, keys.publicKeyPem, this.options.service, this.identity?.spiffeId);
    const signed = await this.options.sign(csr, this.identity);
    const cert = new X509Certificate(signed.certPem);
    const spiffeId = spiffeIdOf(cert);
    // Trust but verify: the CA must have issued what was asked, for this key.
    if (!cert.checkPrivateKey(createPrivateKey(keys.privateKeyPem))) {
      throw new Error('the control plane returned a certificate for another key');
    }
    if (!spiffeId || parseServiceSpiffeId(spiffeId)?.service !== this.options.service) {
      throw new Error(`the control plane issued identity ${spiffeId ?? '(none)'} instead of service ${this.options.service}`);
    }
    return { certPem: signed.certPem, keyPem: keys.privateKeyPem, caPem: signed.bundlePem, spiffeId, notAfter: new Date(cert.validTo), peerTrustDomains: this.peerTrustDomains };
  }
}
