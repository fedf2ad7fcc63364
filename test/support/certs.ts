import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import forge from 'node-forge';

export const TRUST_DOMAIN = 'skein.local';

export interface TestCa {
  readonly certPem: string;
  readonly keyPem: string;
  readonly cert: forge.pki.Certificate;
  readonly key: forge.pki.rsa.PrivateKey;
}

export interface TestLeaf {
  readonly certPem: string;
  readonly keyPem: string;
  /** The CA bundle that verifies this leaf. */
  readonly caPem: string;
  readonly spiffeId: string;
}

export interface LeafOptions {
  /** Defaults to one hour ago and 24 hours from now; set both in the past for an expired cert. */
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  /** Overrides the SPIFFE ID (default `spiffe://skein.local/service/<service>`). */
  readonly spiffeId?: string;
  /** IP address SANs besides the SPIFFE ID (a server certificate checked by address, like the control plane's). */
  readonly ips?: readonly string[];
  /** Replace the key usage (default digitalSignature + keyEncipherment) or extended key usage (default serverAuth + clientAuth) extension. */
  readonly keyUsage?: Record<string, boolean>;
  readonly extKeyUsage?: Record<string, boolean>;
}

/** RSA keys come from node's native generator: forge's pure-JS one takes seconds. */
function rsaKeyPair(): { key: forge.pki.rsa.PrivateKey; publicKey: forge.pki.rsa.PublicKey; keyPem: string } {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const keyPem = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
  const key = forge.pki.privateKeyFromPem(keyPem) as forge.pki.rsa.PrivateKey;
  return { key, publicKey: forge.pki.setRsaPublicKey(key.n, key.e), keyPem };
}

let serial = 1;
function nextSerial(): string {
  return (Date.now() * 1000 + serial++).toString(16).padStart(16, '0');
}

/** A self-signed root CA, as a control plane would create. */
export function makeCa(commonName = 'Skein Test CA', validity: { notBefore?: Date; notAfter?: Date } = {}): TestCa {
  const { key, publicKey, keyPem } = rsaKeyPair();
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  cert.serialNumber = nextSerial();
  cert.validity.notBefore = validity.notBefore ?? new Date(Date.now() - 3_600_000);
  cert.validity.notAfter = validity.notAfter ?? new Date(Date.now() + 10 * 24 * 3_600_000);
  const attrs = [{ name: 'commonName', value: commonName }, { name: 'organizationName', value: 'Skein' }];
  cert.setSubject(attrs);
  cert.setIssuer(attrs);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(key, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem, cert, key };
}

/** A leaf for `service` with URI SAN `spiffe://skein.local/service/<service>`, usable as client and server cert. */
export function makeLeaf(ca: TestCa, service: string, options: LeafOptions = {}): TestLeaf {
  const { key, publicKey, keyPem } = rsaKeyPair();
  const spiffeId = options.spiffeId ?? `spiffe://${TRUST_DOMAIN}/service/${service}`;
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  cert.serialNumber = nextSerial();
  cert.validity.notBefore = options.notBefore ?? new Date(Date.now() - 3_600_000);
  cert.validity.notAfter = options.notAfter ?? new Date(Date.now() + 24 * 3_600_000);
  cert.setSubject([{ name: 'commonName', value: service }]);
  cert.setIssuer(ca.cert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', ...(options.keyUsage ?? { digitalSignature: true, keyEncipherment: true }), critical: true },
    { name: 'extKeyUsage', ...(options.extKeyUsage ?? { serverAuth: true, clientAuth: true }) },
    { name: 'subjectAltName', altNames: [{ type: 6 /* URI */, value: spiffeId }, ...(options.ips ?? []).map((ip) => ({ type: 7 /* IP */, ip }))] },
  ]);
  cert.sign(ca.key, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem, caPem: ca.certPem, spiffeId };
}

export interface IdentityFiles {
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile: string;
}

/** Writes a leaf as `<name>.crt`, `<name>.key` and `<name>-ca.crt` in `dir`, for --cert-file/--key-file/--ca-file. */
export function writeIdentity(dir: string, name: string, leaf: TestLeaf): IdentityFiles {
  const files = { certFile: join(dir, `${name}.crt`), keyFile: join(dir, `${name}.key`), caFile: join(dir, `${name}-ca.crt`) };
  writeFileSync(files.certFile, leaf.certPem);
  writeFileSync(files.keyFile, leaf.keyPem, { mode: 0o600 });
  writeFileSync(files.caFile, leaf.caPem);
  return files;
}
