/**
 * A throwaway PKI for identity tests, built with the real CA: roots in temp dirs, leaves
 * from real CSRs, with any lifetime, clock or trust domain.
 */
import forge from 'node-forge';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CertificateAuthority } from '../../control-plane/ca/authority.js';
import { createCsrPem } from '../../common/identity/csr.js';
import { generateRsaKeyPair } from '../../common/identity/keys.js';
import type { TlsIdentity } from '../../sidecar/identity/provider.js';

export interface TestPki {
  readonly ca: CertificateAuthority;
  readonly dir: string;
  /** A leaf for `service`, trusting this PKI's bundle. */
  leaf(service: string, options?: { lifetimeMs?: number; issuedAt?: Date; trustDomain?: string }): Promise<TlsIdentity>;
  /** A certificate of this PKI's root with a service SPIFFE ID but basicConstraints CA:TRUE: no workload leaf. */
  caFlaggedLeaf(service: string): Promise<TlsIdentity>;
  close(): Promise<void>;
}

export async function createTestPki(trustDomain = 'skein.local'): Promise<TestPki> {
  const dir = await mkdtemp(join(tmpdir(), 'skein-pki-'));
  const ca = await CertificateAuthority.open({ dataDir: join(dir, 'ca'), trustDomain });
  let n = 0;
  return {
    ca,
    dir,
    async leaf(service, options = {}) {
      // Another clock or trust domain: the same root, opened by a second authority.
      const signer =
        options.issuedAt || options.trustDomain
          ? await CertificateAuthority.open({
              dataDir: join(dir, `alt-${n++}`),
              trustDomain: options.trustDomain ?? trustDomain,
              caCertFile: join(dir, 'ca', 'ca.crt'),
              caKeyFile: join(dir, 'ca', 'ca.key'),
              now: options.issuedAt ? () => options.issuedAt! : undefined,
            })
          : ca;
      const keys = await generateRsaKeyPair();
      const leaf = signer.signCsr(createCsrPem(keys.privateKeyPem, keys.publicKeyPem, service), service, options.lifetimeMs);
      return { certPem: leaf.certPem, keyPem: keys.privateKeyPem, caPem: ca.bundlePem, spiffeId: leaf.spiffeId, notAfter: leaf.notAfter };
    },
    caFlaggedLeaf: (service) => caFlaggedLeafOf(join(dir, 'ca'), ca.bundlePem, trustDomain, service),
    close: () => rm(dir, { recursive: true, force: true }),
  };
}

/**
 * A certificate of the root in `caDir` (its ca.crt and ca.key, as CertificateAuthority keeps
 * them) with a service SPIFFE ID but basicConstraints CA:TRUE, which OpenSSL takes as a leaf.
 */
export async function caFlaggedLeafOf(caDir: string, caPem: string, trustDomain: string, service: string): Promise<TlsIdentity> {
  const keys = await generateRsaKeyPair();
  const root = forge.pki.certificateFromPem(await readFile(join(caDir, 'ca.crt'), 'utf8'));
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(keys.publicKeyPem);
  cert.serialNumber = '0c' + randomBytes(8).toString('hex');
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 3_600_000);
  cert.setSubject([{ name: 'commonName', value: service }]);
  cert.setIssuer(root.subject.attributes);
  const spiffeId = `spiffe://${trustDomain}/service/${service}`;
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, keyCertSign: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
    { name: 'subjectAltName', altNames: [{ type: 6, value: spiffeId }] },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(await readFile(join(caDir, 'ca.key'), 'utf8')) as forge.pki.rsa.PrivateKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: keys.privateKeyPem, caPem, spiffeId, notAfter: cert.validity.notAfter };
}
