/**
 * Building X.509 certificates with node-forge: self-signed roots, SPIFFE leaves for
 * sidecars, and the control plane's own TLS server certificate. Pure functions: keys and
 * times come in, PEM goes out.
 */
import forge from 'node-forge';
import { randomBytes } from 'node:crypto';
import { nativeRsaSigner } from '../../common/identity/native-signer.js';

const pki = forge.pki;

/** node-forge writes CRLF line ends; everything else here uses LF. */
function toPem(cert: forge.pki.Certificate): string {
  return pki.certificateToPem(cert).replace(/\r\n/g, '\n');
}

/** Leaves start a minute in the past, so small clock skew between machines is harmless. */
const BACKDATE_MS = 60_000;

export interface Signer {
  readonly certPem: string;
  readonly keyPem: string;
}

export interface IssuedCertificate {
  readonly certPem: string;
  readonly notAfter: Date;
}

function newCertificate(publicKey: forge.pki.PublicKey, now: Date, lifetimeMs: number): forge.pki.Certificate {
  const cert = pki.createCertificate();
  cert.publicKey = publicKey;
  // Positive 128-bit serial: clear the top bit so DER does not read it as negative.
  const serial = randomBytes(16);
  serial[0] = serial[0]! & 0x7f;
  cert.serialNumber = serial.toString('hex');
  cert.validity.notBefore = new Date(now.getTime() - BACKDATE_MS);
  cert.validity.notAfter = new Date(now.getTime() + lifetimeMs);
  return cert;
}

interface IssuerInfo {
  readonly subject: forge.pki.CertificateField[];
  readonly keyIdentifier: string;
  readonly notAfter: Date;
}

/** Issuer subject, key identifier and expiry, parsed once per root rather than once per leaf. */
const issuerInfo = new Map<string, IssuerInfo>();

function issuerOf(certPem: string): IssuerInfo {
  let info = issuerInfo.get(certPem);
  if (!info) {
    const cert = pki.certificateFromPem(certPem);
    info = { subject: cert.subject.attributes, keyIdentifier: cert.generateSubjectKeyIdentifier().getBytes(), notAfter: cert.validity.notAfter };
    if (issuerInfo.size > 16) issuerInfo.clear();
    issuerInfo.set(certPem, info);
  }
  return info;
}

/** Signs `cert`, ending it no later than its issuer: past that it verifies nothing, whatever it says. */
function signWith(cert: forge.pki.Certificate, issuer: Signer): string {
  const { subject, keyIdentifier, notAfter } = issuerOf(issuer.certPem);
  if (cert.validity.notAfter > notAfter) cert.validity.notAfter = notAfter;
  cert.setIssuer(subject);
  cert.setExtensions([...cert.extensions, { name: 'authorityKeyIdentifier', keyIdentifier }]);
  cert.sign(nativeRsaSigner(issuer.keyPem) as unknown as forge.pki.rsa.PrivateKey, forge.md.sha256.create());
  return toPem(cert);
}

/** A self-signed root. Its CN carries a unique suffix so that two roots of one trust domain never share a subject name (chain building matches issuers by name). */
export function createRootCertificate(keyPair: { privateKeyPem: string; publicKeyPem: string }, trustDomain: string, now: Date, lifetimeMs: number): string {
  const cert = newCertificate(pki.publicKeyFromPem(keyPair.publicKeyPem), now, lifetimeMs);
  const attrs = [
    { name: 'organizationName', value: 'Skein' },
    { name: 'commonName', value: `Skein root CA ${trustDomain} ${cert.serialNumber.slice(0, 8)}` },
  ];
  cert.setSubject(attrs);
  cert.setIssuer(attrs);
  cert.setExtensions(rootExtensions(trustDomain));
  cert.sign(nativeRsaSigner(keyPair.privateKeyPem) as unknown as forge.pki.rsa.PrivateKey, forge.md.sha256.create());
  return toPem(cert);
}

function rootExtensions(trustDomain: string): object[] {
  return [
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
    { name: 'subjectAltName', altNames: [{ type: 6, value: `spiffe://${trustDomain}` }] },
  ];
}

/**
 * The root `rootPem` (its subject, key and extensions) issued by another root, `issuer`, and
 * valid while both are: a client that trusts only `issuer` verifies, through it, a chain that
 * a certificate of `rootPem` is sent with.
 */
export function createCrossCertificate(rootPem: string, issuer: Signer, trustDomain: string, now: Date): string {
  const root = pki.certificateFromPem(rootPem);
  // signWith ends it with the issuer, if that comes first.
  const cert = newCertificate(root.publicKey, now, root.validity.notAfter.getTime() - now.getTime());
  cert.setSubject(root.subject.attributes);
  cert.setExtensions(rootExtensions(trustDomain));
  return signWith(cert, issuer);
}

/** A workload leaf: exactly one URI SAN (the SPIFFE ID), usable as TLS client and server. */
export function createLeafCertificate(publicKey: forge.pki.PublicKey, commonName: string, spiffeId: string, issuer: Signer, now: Date, lifetimeMs: number): IssuedCertificate {
  const cert = newCertificate(publicKey, now, lifetimeMs);
  cert.setSubject([
    { name: 'organizationName', value: 'Skein' },
    { name: 'commonName', value: commonName },
  ]);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
    { name: 'subjectAltName', altNames: [{ type: 6, value: spiffeId }] },
    { name: 'subjectKeyIdentifier' },
  ]);
  return { certPem: signWith(cert, issuer), notAfter: cert.validity.notAfter };
}

/** The control plane's gRPC server certificate: DNS and IP SANs, checked by clients as a hostname. */
export function createServerCertificate(publicKeyPem: string, hosts: readonly string[], spiffeId: string, issuer: Signer, now: Date, lifetimeMs: number): IssuedCertificate {
  const cert = newCertificate(pki.publicKeyFromPem(publicKeyPem), now, lifetimeMs);
  cert.setSubject([
    { name: 'organizationName', value: 'Skein' },
    { name: 'commonName', value: 'skein control plane' },
  ]);
  const ip = /^(\d{1,3}\.){3}\d{1,3}$|:/;
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    {
      name: 'subjectAltName',
      altNames: [...hosts.map((h) => (ip.test(h) ? { type: 7, ip: h } : { type: 2, value: h })), { type: 6, value: spiffeId }],
    },
    { name: 'subjectKeyIdentifier' },
  ]);
  return { certPem: signWith(cert, issuer), notAfter: cert.validity.notAfter };
}
