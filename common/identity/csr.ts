/**
 * Certificate signing requests as a sidecar sends them: subject CN = service name, plus the
 * SPIFFE ID as a URI SAN in an extensionRequest when the trust domain is known (renewal).
 * The CA reads the requested identity back with `requestedIdentity`.
 */
import forge from 'node-forge';
import { nativeRsaSigner } from './native-signer.js';

export function createCsrPem(privateKeyPem: string, publicKeyPem: string, service: string, spiffeId?: string): string {
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = forge.pki.publicKeyFromPem(publicKeyPem);
  csr.setSubject([{ name: 'commonName', value: service }]);
  if (spiffeId) {
    csr.setAttributes([{ name: 'extensionRequest', extensions: [{ name: 'subjectAltName', altNames: [{ type: 6, value: spiffeId }] }] }]);
  }
  csr.sign(nativeRsaSigner(privateKeyPem) as unknown as forge.pki.rsa.PrivateKey, forge.md.sha256.create());
  return forge.pki.certificationRequestToPem(csr).replace(/\r\n/g, '\n');
}
