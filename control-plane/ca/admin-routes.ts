/**
 * Admin API of the CA: `GET /api/v1/ca` (trust bundle, roots, rotation progress) and
 * `POST /api/v1/ca/rotate` (start a root rotation; `skein ca rotate`).
 */
import { X509Certificate } from 'node:crypto';
import { ApiError } from '../admin-api/errors.js';
import type { Router } from '../admin-api/router.js';
import { splitPemCertificates } from '../../common/identity/bundle.js';
import type { CertificateAuthority } from './authority.js';
import { CaError } from './errors.js';
import type { RootRotation } from './rotation.js';
import type { SignStats } from './sign-stats.js';

function roots(ca: CertificateAuthority) {
  return splitPemCertificates(ca.bundlePem).map((pem) => {
    const x = new X509Certificate(pem);
    return { subject: x.subject.replace(/\n/g, ', '), fingerprint: x.fingerprint256, notAfter: new Date(x.validTo).toISOString(), signing: x.fingerprint256 === ca.signingRootFingerprint };
  });
}

export function registerCaRoutes(router: Router, deps: { ca: CertificateAuthority; rotation: RootRotation; signing: SignStats }): void {
  const describe = () => ({
    trustDomain: deps.ca.trustDomain,
    /** `--trust-domain-alias`: trust domains whose identities are still taken while the mesh moves from them. */
    trustDomainAliases: deps.ca.trustDomains.slice(1),
    leafLifetimeMs: deps.ca.leafLifetimeMs,
    roots: roots(deps.ca),
    bundlePem: deps.ca.bundlePem,
    rotation: deps.rotation.status(),
    /** CSRs answered since start: `issued`, or refused as `unauthenticated`, `identity-mismatch`, `bad-csr`. */
    signing: deps.signing.view(),
  });
  router.add({
    method: 'GET',
    path: '/api/v1/ca',
    summary: 'The CA: trust domain, roots in the trust bundle, leaf lifetime, root rotation progress, CSRs issued and refused',
    auth: false,
    handler: async () => ({ body: describe() }),
  });
  router.add({
    method: 'POST',
    path: '/api/v1/ca/rotate',
    summary: 'Start a root rotation: add a new root, reissue every leaf from it, then remove the old root; 409 while one runs',
    auth: true,
    success: 202,
    handler: async () => {
      try {
        await deps.rotation.start();
      } catch (err) {
        if (err instanceof CaError && err.code === 'rotation') throw new ApiError('conflict', err.message);
        throw err;
      }
      return { status: 202, body: describe() };
    },
  });
}
