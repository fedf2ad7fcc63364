/**
 * The CA's files in the data dir, which are also its rotation state:
 *   ca.crt       the trust bundle (PEM, every trusted root); what sidecars and the CLI pass as --ca-file
 *   ca.key       the key of the root that signs now (mode 0600)
 *   ca-next.key  during a rotation's first phase only: the key of the root being introduced
 *   ca-cross.crt after a rotation started: the new root issued by the root before it, sent
 *                with the control plane's server certificates so that copies of an older
 *                ca.crt still verify them
 *   ca-imported.sha256  the fingerprint of the operator root (--ca-cert) imported last, so a
 *                restart with the same flags after a `skein ca rotate` keeps the new root
 *   trust-domain the trust domain the CA issues leaves in, so a restart with another
 *                --trust-domain is noticed instead of stranding every sidecar's renewals
 * The signing root is the bundle's certificate whose public key matches ca.key. Every write
 * goes to a temporary file then renames, so a crash never leaves a half-written file.
 */
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { joinPemCertificates, splitPemCertificates } from '../../common/identity/bundle.js';
import { CaError } from './errors.js';

export interface RootKey {
  readonly certPem: string;
  readonly keyPem: string;
}

/** What the CA holds: the bundle, the signing root, and (mid-rotation) the next root. */
export interface CaState {
  readonly bundle: readonly string[];
  readonly signer: RootKey;
  readonly next?: RootKey;
  /** The root introduced by the last rotation (next, or the signer since the switch), issued by the root before it. */
  readonly cross?: string;
}

export const BUNDLE_FILE = 'ca.crt';
const KEY_FILE = 'ca.key';
const NEXT_KEY_FILE = 'ca-next.key';
const CROSS_FILE = 'ca-cross.crt';
/** sha256 fingerprint of the operator root (--ca-cert) last imported into this data dir. */
const IMPORTED_FILE = 'ca-imported.sha256';
const TRUST_DOMAIN_FILE = 'trust-domain';

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

async function writeAtomic(path: string, text: string, mode: number): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, text, { mode });
  await rename(tmp, path);
}

/** The bundle certificate whose public key is the key's, or undefined. */
export function certificateForKey(bundle: readonly string[], keyPem: string): string | undefined {
  const pub = createPublicKey(createPrivateKey(keyPem)).export({ type: 'spki', format: 'der' });
  return bundle.find((c) => new X509Certificate(c).publicKey.export({ type: 'spki', format: 'der' }).equals(pub));
}

export class CaFiles {
  constructor(readonly dataDir: string) {}

  get bundlePath(): string {
    return join(this.dataDir, BUNDLE_FILE);
  }

  /** The state on disk, or undefined when the data dir has no CA yet. */
  async load(): Promise<CaState | undefined> {
    const bundlePem = await readIfExists(this.bundlePath);
    const keyPem = await readIfExists(join(this.dataDir, KEY_FILE));
    if (bundlePem === undefined || keyPem === undefined) return undefined;
    const bundle = splitPemCertificates(bundlePem);
    const signerCert = certificateForKey(bundle, keyPem);
    if (!signerCert) throw new CaError('bad-ca', `${join(this.dataDir, KEY_FILE)} matches no certificate in ${this.bundlePath}`);
    const nextKeyPem = await readIfExists(join(this.dataDir, NEXT_KEY_FILE));
    const nextCert = nextKeyPem === undefined ? undefined : certificateForKey(bundle, nextKeyPem);
    // A next key without its certificate in the bundle is a rotation start that crashed
    // half-way; one equal to the signer is a switch that crashed before cleaning up.
    const hasNext = nextKeyPem !== undefined && nextCert !== undefined && nextCert !== signerCert;
    if (nextKeyPem !== undefined && !hasNext) await rm(join(this.dataDir, NEXT_KEY_FILE), { force: true });
    return {
      bundle,
      signer: { certPem: signerCert, keyPem },
      next: hasNext ? { certPem: nextCert!, keyPem: nextKeyPem! } : undefined,
      cross: await readIfExists(join(this.dataDir, CROSS_FILE)),
    };
  }

  /** The fingerprint of the operator root last imported here, or undefined (none, or a data dir from before it was recorded). */
  async importedRoot(): Promise<string | undefined> {
    return (await readIfExists(join(this.dataDir, IMPORTED_FILE)))?.trim() || undefined;
  }

  async recordImportedRoot(fingerprint: string): Promise<void> {
    await mkdir(this.dataDir, { recursive: true });
    await writeAtomic(join(this.dataDir, IMPORTED_FILE), `${fingerprint}\n`, 0o644);
  }

  /** The trust domain recorded here, or undefined (a new data dir, or one from before it was recorded). */
  async trustDomain(): Promise<string | undefined> {
    return (await readIfExists(join(this.dataDir, TRUST_DOMAIN_FILE)))?.trim() || undefined;
  }

  async recordTrustDomain(trustDomain: string): Promise<void> {
    await mkdir(this.dataDir, { recursive: true });
    await writeAtomic(join(this.dataDir, TRUST_DOMAIN_FILE), `${trustDomain}\n`, 0o644);
  }

  /** Writes a whole state; the order keeps every crash point loadable (keys before the bundle that names them). */
  async save(state: CaState): Promise<void> {
    await mkdir(this.dataDir, { recursive: true });
    if (state.next) await writeAtomic(join(this.dataDir, NEXT_KEY_FILE), state.next.keyPem, 0o600);
    if (state.cross) await writeAtomic(join(this.dataDir, CROSS_FILE), state.cross, 0o644);
    else await rm(join(this.dataDir, CROSS_FILE), { force: true });
    await writeAtomic(join(this.dataDir, KEY_FILE), state.signer.keyPem, 0o600);
    await writeAtomic(this.bundlePath, joinPemCertificates(state.bundle), 0o644);
    if (!state.next) await rm(join(this.dataDir, NEXT_KEY_FILE), { force: true });
  }
}
