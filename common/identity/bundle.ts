/**
 * Trust bundles: one PEM text holding one or more root certificates (several during root
 * rotation). `readTrustBundle` / `bundleCertificates` parse one for whoever is given a bundle
 * file (a sidecar's --ca-file, in either mode), with errors that name the file. The
 * fingerprint lets the control plane see which bundle each sidecar runs.
 */
import { X509Certificate, createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Each certificate of a PEM bundle, in order, normalised to end with a newline. */
export function splitPemCertificates(pem: string): string[] {
  return (pem.match(PEM_CERT) ?? []).map((c) => `${c.replace(/\r\n/g, '\n')}\n`);
}

/** A trust bundle that cannot be used: unreadable, without a certificate, or with one that does not parse. The message starts with where it came from. */
export class TrustBundleError extends Error {
  override name = 'TrustBundleError';
}

/**
 * The certificates of a PEM trust bundle, parsed, in order. `source` (the file, as the user
 * named it) leads every error: none in it, or which one does not parse.
 */
export function bundleCertificates(pem: string, source: string): X509Certificate[] {
  const pems = splitPemCertificates(pem);
  if (pems.length === 0) throw new TrustBundleError(`${source}: no PEM certificate in it`);
  return pems.map((cert, i) => {
    try {
      return new X509Certificate(cert);
    } catch (err) {
      throw new TrustBundleError(`${source}: certificate ${i + 1} of ${pems.length} does not parse (${(err as Error).message})`);
    }
  });
}

/** Reads and parses a trust bundle file (`bundleCertificates`); one that cannot be read is named with the error code (ENOENT, EACCES). */
export function readTrustBundle(file: string): { readonly pem: string; readonly certificates: X509Certificate[] } {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (err) {
    throw new TrustBundleError(`${file}: cannot read it as PEM certificates (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  return { pem, certificates: bundleCertificates(pem, file) };
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
