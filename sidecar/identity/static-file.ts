/**
 * Static identity: --cert-file, --key-file and --ca-file read once at start (static mode,
 * no control plane to renew them).
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { spiffeIdOf } from '../../common/identity/spiffe.js';
import type { IdentityProvider, TlsIdentity } from './provider.js';

export interface IdentityFiles {
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile: string;
}

export function readIdentity(files: IdentityFiles): TlsIdentity {
  const certPem = readFileSync(files.certFile, 'utf8');
  const keyPem = readFileSync(files.keyFile, 'utf8');
  const caPem = readFileSync(files.caFile, 'utf8');
  const cert = new X509Certificate(certPem);
  return { certPem, keyPem, caPem, spiffeId: spiffeIdOf({ subjectAltName: cert.subjectAltName }), notAfter: new Date(cert.validTo) };
}

export class StaticFileIdentity implements IdentityProvider {
  private readonly identity: TlsIdentity;

  constructor(files: IdentityFiles) {
    this.identity = readIdentity(files);
  }

  current(): TlsIdentity {
    return this.identity;
  }

  onChange(): void {
    // Static files never change while running.
  }

  async close(): Promise<void> {}
}
