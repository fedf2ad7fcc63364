/**
 * Static identity (`--cert-file`, `--key-file`, `--ca-file`): PEM files managed outside
 * Skein (cert-manager, Vault, a script). The files are re-read when they change, so an
 * external rotation reaches new connections without a restart; a half-written or
 * mismatched set is ignored until it becomes consistent.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import { spiffeIdOf } from '../../common/identity/spiffe.js';
import type { Logger } from '../../common/log.js';
import type { IdentityProvider, TlsIdentity } from './provider.js';

export interface StaticFilesOptions {
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile: string;
  readonly logger: Logger;
  /** How often the files are checked for changes. */
  readonly pollMs?: number;
}

/** Reads and checks one consistent identity from PEM files; throws with the file at fault. */
export function readIdentityFiles(certFile: string, keyFile: string, caFile: string): TlsIdentity {
  const certPem = readFileSync(certFile, 'utf8');
  const keyPem = readFileSync(keyFile, 'utf8');
  const caPem = readFileSync(caFile, 'utf8');
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (err) {
    throw new Error(`${certFile}: not a PEM certificate (${(err as Error).message})`);
  }
  if (!cert.checkPrivateKey(createPrivateKey(keyPem))) throw new Error(`${keyFile} is not the private key of ${certFile}`);
  try {
    new X509Certificate(caPem);
  } catch (err) {
    throw new Error(`${caFile}: not a PEM certificate bundle (${(err as Error).message})`);
  }
  return { certPem, keyPem, caPem, spiffeId: spiffeIdOf(cert), notAfter: new Date(cert.validTo) };
}

export class StaticFilesIdentityProvider implements IdentityProvider {
  private identity: TlsIdentity;
  private readonly listeners: ((identity: TlsIdentity) => void)[] = [];
  private readonly files: string[];
  private readonly reload = (): void => this.tryReload();

  /** Throws when the files cannot be used at start: a static sidecar without identity is a config error. */
  constructor(private readonly options: StaticFilesOptions) {
    this.identity = readIdentityFiles(options.certFile, options.keyFile, options.caFile);
    this.files = [options.certFile, options.keyFile, options.caFile];
    for (const f of this.files) watchFile(f, { interval: options.pollMs ?? 2_000, persistent: false }, this.reload);
  }

  current(): TlsIdentity {
    return this.identity;
  }

  onChange(listener: (identity: TlsIdentity) => void): void {
    this.listeners.push(listener);
  }

  async close(): Promise<void> {
    for (const f of this.files) unwatchFile(f, this.reload);
  }

  private tryReload(): void {
    let next: TlsIdentity;
    try {
      next = readIdentityFiles(this.options.certFile, this.options.keyFile, this.options.caFile);
    } catch (err) {
      this.options.logger.warn({ err: (err as Error).message }, 'identity files changed but are not usable yet; keeping the current identity');
      return;
    }
    if (next.certPem === this.identity.certPem && next.keyPem === this.identity.keyPem && next.caPem === this.identity.caPem) return;
    this.identity = next;
    for (const listener of this.listeners) listener(next);
  }
}
