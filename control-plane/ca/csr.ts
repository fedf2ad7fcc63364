/**
 * Reading a sidecar's CSR: its signature must verify (proof that the caller holds the key),
 * and the identity it asks for is its SPIFFE URI SAN when present, else its CN.
 */
import forge from 'node-forge';
import { verify } from 'node:crypto';
import { parseServiceSpiffeId } from '../../common/identity/spiffe.js';
import { CaError } from './errors.js';

const MIN_RSA_BITS = 2048;

export interface CsrRequest {
  readonly publicKey: forge.pki.PublicKey;
  /** The service name the CSR asks to be. */
  readonly service: string;
}

interface ExtensionRequest {
  extensions?: { name?: string; altNames?: { type: number; value?: string }[] }[];
}

/** Checks the CSR's self-signature with Node's native RSA (node-forge's pure-JS one is ~20x slower). */
function signatureVerifies(csr: forge.pki.CertificateSigningRequest): boolean {
  if (csr.signatureOid !== forge.pki.oids.sha256WithRSAEncryption) throw new Error(`unsupported signature algorithm ${String(csr.signatureOid)} (sha256WithRSAEncryption expected)`);
  // Present on every CSR parsed from PEM: the signed bytes exactly as received.
  const parsed = (csr as { certificationRequestInfo?: forge.asn1.Asn1 }).certificationRequestInfo;
  if (!parsed) throw new Error('CSR carries no certificationRequestInfo');
  const info = Buffer.from(forge.asn1.toDer(parsed).getBytes(), 'binary');
  const publicKeyPem = forge.pki.publicKeyToPem(csr.publicKey!);
  return verify('sha256', info, publicKeyPem, Buffer.from(csr.signature as string, 'binary'));
}

/** `trustDomains`: the CA's own first, then the aliases whose identities it also takes. */
export function readCsr(csrPem: string, trustDomains: readonly string[]): CsrRequest {
  let csr: forge.pki.CertificateSigningRequest;
  let verified: boolean;
  try {
    csr = forge.pki.certificationRequestFromPem(csrPem);
    verified = signatureVerifies(csr);
  } catch (err) {
    throw new CaError('bad-csr', `not a PEM certificate signing request with an RSA key: ${(err as Error).message}`);
  }
  if (!verified) throw new CaError('bad-csr', 'CSR signature does not verify');
  if (!csr.publicKey) throw new CaError('bad-csr', 'CSR has no public key');
  // A weak key weakens the identity every peer trusts, not only its holder's (NIST SP 800-131A: 2048 bits).
  const bits = (csr.publicKey as forge.pki.rsa.PublicKey).n.bitLength();
  if (bits < MIN_RSA_BITS) throw new CaError('bad-csr', `CSR's RSA key has ${bits} bits; at least ${MIN_RSA_BITS} are required`);

  const ext = csr.getAttribute({ name: 'extensionRequest' }) as ExtensionRequest | null;
  const uris = (ext?.extensions ?? [])
    .filter((e) => e.name === 'subjectAltName')
    .flatMap((e) => e.altNames ?? [])
    .filter((n) => n.type === 6)
    .map((n) => n.value ?? '');
  if (uris.length > 1) throw new CaError('bad-csr', `CSR asks for ${uris.length} URI SANs; a workload has exactly one identity`);
  if (uris.length === 1) {
    const id = parseServiceSpiffeId(uris[0]!);
    if (!id) throw new CaError('identity-mismatch', `CSR asks for ${uris[0]}, which is not a service SPIFFE ID`);
    if (!trustDomains.includes(id.trustDomain)) throw new CaError('identity-mismatch', `CSR asks for trust domain ${id.trustDomain}; this CA serves ${servedTrustDomains(trustDomains)}`);
    return { publicKey: csr.publicKey, service: id.service };
  }
  const cn = csr.subject.getField('CN') as { value?: string } | null;
  if (!cn?.value) throw new CaError('bad-csr', 'CSR names no identity (no URI SAN and no CN)');
  return { publicKey: csr.publicKey, service: String(cn.value) };
}

/** `a` or `a (and aliases b, c)`, for messages. */
export function servedTrustDomains(trustDomains: readonly string[]): string {
  const [own, ...aliases] = trustDomains;
  return aliases.length === 0 ? own! : `${own} (and its alias${aliases.length > 1 ? 'es' : ''} ${aliases.join(', ')})`;
}
