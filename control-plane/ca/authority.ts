/**
 * The control plane's certificate authority (SPEC §5): signs sidecar CSRs into SPIFFE leaves,
 * issues the control plane's own server certificate, and carries the trust bundle through a
 * root rotation in three steps, each persisted before it takes effect:
 *   stage   a new root joins the bundle; leaves are still signed by the old one
 *   switch  leaves are signed by the new root (every proxy already trusts it)
 *   retire  the old roots leave the bundle (every proxy already runs a new-root leaf)
 * Deciding *when* each step is safe is rotation.ts's job; this class only does the steps.
 */
import forge from 'node-forge';
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { bundleFingerprint, joinPemCertificates, splitPemCertificates } from '../../common/identity/bundle.js';
import { generateRsaKeyPair, type KeyPairPem } from '../../common/identity/keys.js';
import { isTrustDomain, serviceSpiffeId, uriSans } from '../../common/identity/spiffe.js';
import { createCrossCertificate, createLeafCertificate, createRootCertificate, createServerCertificate, type IssuedCertificate } from './certificates.js';
import { readCsr } from './csr.js';
import { CaError } from './errors.js';
import { CaFiles, certificateForKey, type CaState, type RootKey } from './store.js';

const ROOT_LIFETIME_MS = 10 * 365 * 24 * 3_600_000;
export const DEFAULT_LEAF_LIFETIME_MS = 24 * 3_600_000;

export type RotationPhase = 'stable' | 'staged' | 'switched';

export interface SignedLeaf extends IssuedCertificate {
  readonly bundlePem: string;
  readonly spiffeId: string;
}

/** A TLS server certificate as the server sends it: followed by the cross-signed root, when it has one. */
export interface ServerCertificate {
  readonly chainPem: string;
  readonly notAfter: Date;
}

export interface CaOptions {
  readonly dataDir: string;
  readonly trustDomain: string;
  /**
   * Trust domains the mesh was in before (`--trust-domain-alias`, Istio's trustDomainAliases):
   * a certificate of one still proves its service, and a renewal is issued in `trustDomain`.
   */
  readonly trustDomainAliases?: readonly string[];
  /** Operator-supplied root (PEM files); imported into the data dir unless it is already there. */
  readonly caCertFile?: string;
  readonly caKeyFile?: string;
  readonly leafLifetimeMs?: number;
  readonly now?: () => Date;
}

export class CertificateAuthority {
  private listeners: (() => void)[] = [];

  private constructor(
    private state: CaState,
    private readonly files: CaFiles,
    readonly trustDomain: string,
    /** The trust domain leaves are issued in, then its aliases: every one whose identities the mesh takes. */
    readonly trustDomains: readonly string[],
    readonly leafLifetimeMs: number,
    private readonly now: () => Date,
  ) {}

  /** Loads the CA from the data dir, imports the operator's, or creates a new root on first start. */
  static async open(options: CaOptions): Promise<CertificateAuthority> {
    const files = new CaFiles(options.dataDir);
    const now = options.now ?? (() => new Date());
    let state = await files.load();
    const trustDomains = [options.trustDomain, ...(options.trustDomainAliases ?? [])];
    if (state) await checkTrustDomain(files, state, trustDomains);
    if (options.caCertFile || options.caKeyFile) {
      const imported = await importOperatorCa(options.caCertFile, options.caKeyFile);
      const fingerprint = new X509Certificate(imported.signer.certPem).fingerprint256;
      // Keep the data dir when it already trusts the operator's root (it may be mid-rotation),
      // or when it imported this very root before and has rotated away from it since (`skein
      // ca rotate`): restarting with unchanged flags must not bring back the retired root,
      // dropping the new root's key and every leaf issued from it. A root the data dir never
      // imported is the operator rolling out a new one: it replaces the data dir's.
      const keep = state !== undefined && (state.bundle.some((c) => c.trim() === imported.signer.certPem.trim()) || (await files.importedRoot()) === fingerprint || rotatedAwayFrom(state, imported.signer.certPem));
      // A root that is to sign (or signs) must be valid now: out of its validity it verifies nothing,
      // and every sidecar would fail to reach the control plane and its peers. Now by the wall
      // clock, which is what sidecars verify with (`options.now` is the time leaves are issued at).
      if (!keep || state!.signer.certPem.trim() === imported.signer.certPem.trim()) checkValidity(imported.signer.certPem, options.caCertFile!, new Date());
      if (!keep) {
        state = imported;
        await files.save(state);
      }
      if ((await files.importedRoot()) !== fingerprint) await files.recordImportedRoot(fingerprint);
    }
    if (!state) {
      state = { bundle: [], signer: await newRoot(options.trustDomain, now()) };
      state = { ...state, bundle: [state.signer.certPem] };
      await files.save(state);
    }
    if ((await files.trustDomain()) !== options.trustDomain) await files.recordTrustDomain(options.trustDomain);
    return new CertificateAuthority(state, files, options.trustDomain, trustDomains, options.leafLifetimeMs ?? DEFAULT_LEAF_LIFETIME_MS, now);
  }

  get bundlePem(): string {
    return joinPemCertificates(this.state.bundle);
  }

  get bundlePath(): string {
    return this.files.bundlePath;
  }

  get bundleFingerprint(): string {
    return bundleFingerprint(this.bundlePem);
  }

  /** sha256 fingerprint (Node's colon form) of the root that signs leaves now. */
  get signingRootFingerprint(): string {
    return new X509Certificate(this.state.signer.certPem).fingerprint256;
  }

  get phase(): RotationPhase {
    if (this.state.next) return 'staged';
    return this.state.bundle.length > 1 ? 'switched' : 'stable';
  }

  /** Called after every change of bundle or signing root (e.g. to reissue the server certificate). */
  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  /**
   * Signs a sidecar's CSR for `expectedService` (the service its token or client certificate
   * proves), in this CA's trust domain: one that asks for its identity in an alias trust domain
   * (a sidecar renewing during a migration) gets it in the new one. Refuses a CSR that asks
   * for any other identity.
   */
  signCsr(csrPem: string, expectedService: string, lifetimeMs = this.leafLifetimeMs): SignedLeaf {
    const request = readCsr(csrPem, this.trustDomains);
    if (request.service !== expectedService) {
      throw new CaError('identity-mismatch', `CSR asks for service "${request.service}" but the caller is authorised for "${expectedService}" only`);
    }
    const spiffeId = serviceSpiffeId(this.trustDomain, expectedService);
    const leaf = createLeafCertificate(request.publicKey, expectedService, spiffeId, this.state.signer, this.now(), lifetimeMs);
    return { ...leaf, spiffeId, bundlePem: this.bundlePem };
  }

  /**
   * A TLS server certificate for the control plane's gRPC port (and webhook), for the given
   * hostnames and IPs. Once a rotation switched, the chain carries the new root as issued by
   * the old one: clients given a copy of ca.crt made before the rotation (a Compose volume, a
   * ConfigMap) still verify the control plane, as they did before it, and get the new bundle.
   */
  issueServerCert(keyPair: KeyPairPem, hosts: readonly string[], lifetimeMs: number): ServerCertificate {
    const spiffeId = `spiffe://${this.trustDomain}/control-plane`;
    const issued = createServerCertificate(keyPair.publicKeyPem, hosts, spiffeId, this.state.signer, this.now(), lifetimeMs);
    const { cross } = this.state;
    const forSigner = cross !== undefined && new X509Certificate(cross).publicKey.equals(new X509Certificate(this.state.signer.certPem).publicKey);
    return { chainPem: forSigner ? joinPemCertificates([issued.certPem, cross]) : issued.certPem, notAfter: issued.notAfter };
  }

  /** Rotation step 1: a new root joins the bundle. */
  async stageNewRoot(): Promise<void> {
    if (this.phase !== 'stable') throw new CaError('rotation', `a root rotation is already in progress (${this.phase})`);
    const next = await newRoot(this.trustDomain, this.now());
    const cross = createCrossCertificate(next.certPem, this.state.signer, this.trustDomain, this.now());
    await this.commit({ bundle: [...this.state.bundle, next.certPem], signer: this.state.signer, next, cross });
  }

  /** Rotation step 2: leaves are signed by the new root from now on. */
  async switchToNextRoot(): Promise<void> {
    if (!this.state.next) throw new CaError('rotation', 'no new root is staged');
    await this.commit({ bundle: this.state.bundle, signer: this.state.next, cross: this.state.cross });
  }

  /** Rotation step 3: only the signing root stays trusted. */
  async retireOldRoots(): Promise<void> {
    if (this.phase !== 'switched') throw new CaError('rotation', `cannot retire old roots in phase ${this.phase}`);
    await this.commit({ bundle: [this.state.signer.certPem], signer: this.state.signer, cross: this.state.cross });
  }

  private async commit(state: CaState): Promise<void> {
    await this.files.save(state);
    this.state = state;
    for (const listener of this.listeners) listener();
  }
}

/**
 * The data dir's CA issued its leaves in a trust domain this start still takes. Started in
 * another one, the control plane would refuse every sidecar's renewal (its certificate and
 * its CSR name the old trust domain) and each would fail once its leaf expired: better not
 * to start, saying how to keep the old domain or migrate from it.
 */
async function checkTrustDomain(files: CaFiles, state: CaState, trustDomains: readonly string[]): Promise<void> {
  // Data dirs from before the record have the trust domain in their root's URI SAN (certificates.ts).
  const recorded = (await files.trustDomain()) ?? rootTrustDomain(state.signer.certPem);
  if (recorded === undefined || trustDomains.includes(recorded)) return;
  const wanted = trustDomains[0]!;
  throw new CaError(
    'bad-ca',
    `the CA in ${files.dataDir} issues identities in trust domain ${recorded}, not ${wanted} (--trust-domain): ` +
      `its sidecars hold spiffe://${recorded}/... certificates, whose renewals a CA of ${wanted} would refuse. ` +
      `Start with --trust-domain ${recorded} to keep it, or with --trust-domain ${wanted} --trust-domain-alias ${recorded} to move the mesh to ${wanted}`,
  );
}

/** The trust domain a Skein root names in its URI SAN (`spiffe://<domain>`); undefined for one without (an operator's). */
function rootTrustDomain(rootPem: string): string | undefined {
  const id = uriSans(new X509Certificate(rootPem).subjectAltName).find((u) => u.startsWith('spiffe://'));
  const domain = id?.slice('spiffe://'.length);
  return domain && isTrustDomain(domain) ? domain : undefined;
}

function checkValidity(rootPem: string, certFile: string, now: Date): void {
  const root = new X509Certificate(rootPem);
  const [notBefore, notAfter] = [Date.parse(root.validFrom), Date.parse(root.validTo)];
  if (now.getTime() >= notAfter) throw new CaError('bad-ca', `${certFile}: the CA certificate expired at ${new Date(notAfter).toISOString()}; no sidecar would trust what it signs`);
  if (now.getTime() < notBefore) throw new CaError('bad-ca', `${certFile}: the CA certificate is not valid before ${new Date(notBefore).toISOString()}; no sidecar would trust what it signs`);
}

/**
 * The data dir's last rotation started from `rootPem`: its cross certificate (the root it
 * introduced) was issued by it. This tells a data dir that rotated away from the operator's
 * root before the import was recorded (ca-imported.sha256) from one that never had it.
 */
function rotatedAwayFrom(state: CaState, rootPem: string): boolean {
  if (!state.cross) return false;
  const cross = new X509Certificate(state.cross);
  const root = new X509Certificate(rootPem);
  return cross.checkIssued(root) && cross.verify(root.publicKey);
}

async function newRoot(trustDomain: string, now: Date): Promise<RootKey> {
  const keyPair = await generateRsaKeyPair();
  return { keyPem: keyPair.privateKeyPem, certPem: createRootCertificate(keyPair, trustDomain, now, ROOT_LIFETIME_MS) };
}

async function importOperatorCa(certFile: string | undefined, keyFile: string | undefined): Promise<CaState> {
  if (!certFile || !keyFile) throw new CaError('bad-ca', '--ca-cert and --ca-key go together');
  const bundle = splitPemCertificates(await readFile(certFile, 'utf8'));
  if (bundle.length === 0) throw new CaError('bad-ca', `${certFile} holds no PEM certificate`);
  const keyPem = await readFile(keyFile, 'utf8');
  let signerCert: string | undefined;
  try {
    signerCert = certificateForKey(bundle, keyPem);
  } catch (err) {
    throw new CaError('bad-ca', `${keyFile} is not a usable private key: ${(err as Error).message}`);
  }
  if (!signerCert) throw new CaError('bad-ca', `${keyFile} does not match any certificate in ${certFile}`);
  if (!new X509Certificate(signerCert).ca) throw new CaError('bad-ca', `${certFile}: the certificate for ${keyFile} is not a CA (basicConstraints CA:false)`);
  try {
    forge.pki.privateKeyFromPem(keyPem);
  } catch {
    throw new CaError('bad-ca', `${keyFile}: node-forge signs with RSA keys only`);
  }
  return { bundle, signer: { certPem: signerCert, keyPem } };
}
