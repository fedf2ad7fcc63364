/**
 * TLS settings from a `TlsIdentity`, for the sidecar's listeners and upstream connections.
 * Inbound: the server asks every caller for a certificate and leaves judging it to
 * `sidecar/authz/peer.ts` (precise reasons instead of a bare reset). Outbound: OpenSSL checks
 * the chain and validity against the bundle, then `spiffeServerCheck` replaces the hostname
 * check with "is this the service I meant to reach".
 */
import type { Socket } from 'node:net';
import { createSecureContext, type ConnectionOptions, type PeerCertificate, type SecureContext, type SecureContextOptions, type TLSSocket, type TlsOptions } from 'node:tls';
import { TLS_HANDSHAKE_TIMEOUT } from '../cluster/connect-phase.js';
import { parseServiceSpiffeId, serviceSpiffeId, spiffeIdOf } from '../../common/identity/spiffe.js';
import type { TlsIdentity } from './provider.js';

/** Error code of a server that is not the expected service. */
export const PEER_IDENTITY_ERROR = 'ERR_SKEIN_PEER_IDENTITY';

export class PeerIdentityError extends Error {
  override name = 'PeerIdentityError';
  readonly code = PEER_IDENTITY_ERROR;
  constructor(
    message: string,
    readonly expected: string,
    readonly actual: string | undefined,
  ) {
    super(message);
  }
}

export function secureContextOptions(identity: TlsIdentity): SecureContextOptions {
  return { key: identity.keyPem, cert: identity.certPem, ca: identity.caPem, minVersion: 'TLSv1.2' };
}

export function secureContextFor(identity: TlsIdentity): SecureContext {
  return createSecureContext(secureContextOptions(identity));
}

/** Options for the inbound server; after a renewal pass `secureContextOptions(next)` to `server.setSecureContext`. */
export function inboundServerOptions(identity: TlsIdentity): TlsOptions {
  return { ...secureContextOptions(identity), requestCert: true, rejectUnauthorized: false };
}

/** The trust domain of this sidecar's own identity. */
export function trustDomainOf(identity: TlsIdentity | undefined): string | undefined {
  return identity?.spiffeId ? parseServiceSpiffeId(identity.spiffeId)?.trustDomain : undefined;
}

/** The trust domains peers' identities may be in: this sidecar's own first, then the others the control plane takes. */
export function peerTrustDomainsOf(identity: TlsIdentity | undefined): readonly string[] {
  const own = trustDomainOf(identity);
  if (own === undefined) return [];
  const others = identity!.peerTrustDomains?.filter((d) => d !== own) ?? [];
  return others.length === 0 ? [own] : [own, ...new Set(others)];
}

/**
 * A `checkServerIdentity` that accepts only `spiffe://<trust domain>/service/<destination>`, in
 * one of `trustDomains` (this sidecar's own first; more while the mesh moves to another one).
 */
export function spiffeServerCheck(trustDomains: readonly string[], destination: string): (host: string, cert: PeerCertificate) => Error | undefined {
  const expected = serviceSpiffeId(trustDomains[0]!, destination);
  return (_host, cert) => {
    const actual = spiffeIdOf(cert);
    // A CA certificate is no workload identity (SPIFFE X509-SVID §5.2), though OpenSSL takes one as a leaf.
    if (cert.ca) return new PeerIdentityError(`upstream presented a CA certificate (basicConstraints CA:TRUE) for ${actual ?? '(no SPIFFE ID)'}, not a workload leaf of ${expected}`, expected, actual);
    const id = actual === undefined ? undefined : parseServiceSpiffeId(actual);
    if (id?.service === destination && trustDomains.includes(id.trustDomain)) return undefined;
    const also = trustDomains.length > 1 ? ` (or trust domain ${trustDomains.slice(1).join(', ')})` : '';
    return new PeerIdentityError(`upstream presented identity ${actual ?? '(none)'}, expected ${expected}${also}`, expected, actual);
  };
}

/**
 * Options for `tls.connect` (or an undici `connect` option) to a sidecar of `destination`.
 * Pass the `SecureContext` built once per identity, so connections share it.
 */
export function outboundConnectOptions(identity: TlsIdentity, context: SecureContext, destination: string): ConnectionOptions {
  const trustDomains = peerTrustDomainsOf(identity);
  if (trustDomains.length === 0) throw new Error('this sidecar certificate has no SPIFFE ID, so upstream identities cannot be checked');
  return { secureContext: context, rejectUnauthorized: true, checkServerIdentity: spiffeServerCheck(trustDomains, destination) };
}

/** The reason label for `skein_tls_handshake_failures_total` of an outbound handshake error. */
export function outboundHandshakeFailureReason(err: { code?: string }): string {
  switch (err.code) {
    case PEER_IDENTITY_ERROR:
      return 'wrong-identity';
    case 'CERT_HAS_EXPIRED':
      return 'expired-certificate';
    case 'CERT_NOT_YET_VALID':
      return 'not-yet-valid-certificate';
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'CERT_SIGNATURE_FAILURE':
      return 'untrusted-certificate';
    // The peer reset or closed the connection mid-handshake (node says ECONNRESET for a FIN there too).
    case 'ECONNRESET':
    case 'EPIPE':
      return 'reset';
    // The peer took the TCP connection but did not finish the handshake within the connect timeout.
    case TLS_HANDSHAKE_TIMEOUT:
      return 'timeout';
    default:
      if (refusalAlert(err.code) !== undefined) return 'refused-by-peer';
      return err.code?.startsWith('ERR_SSL_') ? 'protocol' : 'other';
  }
}

/**
 * The TLS alerts by which a server refuses a client's certificate (RFC 8446 §6.2), by node's
 * code for one received, and what each says. Node's TLS server sends only certificate_required
 * (to a client with none, when it rejects unauthorized clients) and closes the connection on
 * a certificate it refuses without an alert; the others come from other TLS stacks (Envoy,
 * Go, OpenSSL's s_server). A Skein inbound tells a refused caller by a mux frame instead
 * (sidecar/listeners.ts).
 */
const REFUSAL_ALERTS = new Map([
  ['ERR_SSL_TLSV1_ALERT_UNKNOWN_CA', 'unknown CA'],
  ['ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE', 'bad certificate'],
  ['ERR_SSL_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE', 'unsupported certificate'],
  ['ERR_SSL_SSLV3_ALERT_CERTIFICATE_REVOKED', 'certificate revoked'],
  ['ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED', 'certificate expired'],
  ['ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN', 'certificate unknown'],
  ['ERR_SSL_TLSV1_ALERT_ACCESS_DENIED', 'access denied'],
  ['ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', 'certificate required'],
]);

/** What the peer's alert refusing this sidecar's certificate says, or undefined for any other error code. */
export function refusalAlert(code: string | undefined): string | undefined {
  return code === undefined ? undefined : REFUSAL_ALERTS.get(code);
}

/**
 * The reason label for `skein_tls_handshake_failures_total` of an inbound handshake error (the
 * server's 'tlsClientError'), or undefined for a caller that sent no byte before it closed or
 * reset the connection or the handshake timeout fired: a port scan, a TCP health probe, a
 * connection opened and left idle, which began no handshake (Envoy counts none for it either).
 * One that does so after sending any of its ClientHello is `reset`, or `timeout`.
 */
export function inboundHandshakeFailureReason(err: Error & { code?: string }, socket: TLSSocket): string | undefined {
  const text = `${err.code ?? ''} ${err.message}`;
  if (/PEER_DID_NOT_RETURN_A_CERTIFICATE|CERTIFICATE_REQUIRED/i.test(text)) return 'no-client-certificate';
  if (/EXPIRED/i.test(text)) return 'expired-certificate';
  if (/UNKNOWN_CA|UNABLE_TO_GET_ISSUER|CERTIFICATE_VERIFY_FAILED|SELF_SIGNED|UNABLE_TO_VERIFY/i.test(text)) return 'untrusted-certificate';
  // Node says ECONNRESET ('socket hang up') for a close before the handshake's end as for a reset.
  if (err.code === 'ECONNRESET') return begunBy(socket) ? 'reset' : undefined;
  if (err.code === 'ERR_TLS_HANDSHAKE_TIMEOUT') return begunBy(socket) ? 'timeout' : undefined;
  return 'protocol';
}

/**
 * The caller sent at least a byte of its ClientHello. A server's TLSSocket counts only what it
 * decrypted, none before the handshake's end, so the bytes are read off the TCP socket under
 * it, which node keeps as `_parent` (undocumented; without it the connection counts, as all
 * did before).
 */
function begunBy(socket: TLSSocket): boolean {
  return (socket as TLSSocket & { _parent?: Socket })._parent?.bytesRead !== 0;
}
