/**
 * What a sidecar reports about its certificate on the push stream (CertStatus): expiry and
 * SPIFFE ID for `GET /api/v1/proxies` (which trust domain a sidecar is in while the mesh moves
 * to another), and the fingerprints of its trust bundle and of its leaf's issuing
 * root, by which the control plane paces a root rotation.
 */
import { bundleFingerprint, issuingRootFingerprint } from '../../common/identity/bundle.js';
import type { TlsIdentity } from './provider.js';

export interface CertStatusMessage {
  readonly expiryUnix: string;
  readonly bundleFingerprint: string;
  readonly rootFingerprint: string;
  /** '' for a leaf without one (a static certificate may have none): proto3 has no absent string. */
  readonly spiffeId: string;
}

export function certStatusOf(identity: TlsIdentity): CertStatusMessage {
  return {
    expiryUnix: String(Math.floor(identity.notAfter.getTime() / 1000)),
    bundleFingerprint: bundleFingerprint(identity.caPem),
    rootFingerprint: issuingRootFingerprint(identity.certPem, identity.caPem) ?? '',
    spiffeId: identity.spiffeId ?? '',
  };
}
