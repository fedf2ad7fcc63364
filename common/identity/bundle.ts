/**
 * Trust bundles: one PEM text holding one or more root certificates (several during root
 * rotation). The fingerprint lets the control plane see which bundle each sidecar runs.
 */
import { X509Certificate, createHash } from 'node:crypto';

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Each certificate of a PEM bundle, in order, normalised to end with a newline. */
export function splitPemCertificates(pem: string): string[] {
  return (pem.match(PEM_CERT) ?? []).map((c) => `${c.replace(/\r\n/g, '\n')}\n`);
}

export function joinPemCertificates(certs: readonly string[]): string {
  return certs.map((c) => (c.endsWith('\n') ? c : `${c}\n`)).join('');
}

/**
 * sha256 over the sorted DER fingerprints of the bundle's certificates, so the same roots
 * in any order or formatting give the same value.
 */
export function bundleFingerprint(pem: string): string {
  const each = splitPemCertificates(pem).map((c) => new X509Certificate(c).fingerprint256).sort();
  return createHash('sha256').update(each.join('\n')).digest('hex');
}

/** The fingerprint256 of the bundle root that issued `certPem`, or undefined when none did. */
export function issuingRootFingerprint(certPem: string, bundlePem: string): string | undefined {
  const leaf = new X509Certificate(certPem);
  for (const pem of splitPemCertificates(bundlePem)) {
    const root = new X509Certificate(pem);
    if (leaf.checkIssued(root) && leaf.verify(root.publicKey)) return root.fingerprint256;
  }
  return undefined;
}
