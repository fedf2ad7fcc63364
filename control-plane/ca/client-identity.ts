/**
 * The service a caller of the control plane's gRPC port proves by its TLS client certificate
 * (a renewal's `Sign`, a push stream's Hello). grpc-js reports a peer certificate only when
 * the connection is `authorized`, but a resumed TLS session keeps the verdict of the handshake
 * that began it: OpenSSL does not check the certificate's dates again, so a session ticket got
 * while a leaf was valid would let it renew, or open a stream, after it expired (chaining
 * resumptions, for ever). The dates are therefore checked here on every call. (The chain needs
 * no second look: every change of the bundle installs a new TLS context, whose new ticket keys
 * end the sessions of the old one.) A CA certificate is no workload identity either (SPIFFE
 * X509-SVID §5.2), though OpenSSL takes one of the mesh's root as a client certificate.
 */
import { parseServiceSpiffeId, serviceSpiffeId, spiffeIdOf, type ServiceIdentity } from '../../common/identity/spiffe.js';
import { servedTrustDomains } from './csr.js';

/** What grpc-js's auth context says of a verified client certificate (node's `PeerCertificate`). */
export interface ClientCertificate {
  readonly subjectaltname?: string;
  readonly valid_from?: string;
  readonly valid_to?: string;
  /** basicConstraints CA:TRUE. */
  readonly ca?: boolean;
}

/** The service identity of a leaf certificate valid at `now`, in whichever trust domain; undefined otherwise. */
function identityOfClientCertificate(cert: ClientCertificate | undefined, now: number): ServiceIdentity | undefined {
  if (!cert?.valid_from || !cert.valid_to || cert.ca) return undefined;
  // NaN (a date node could not print) compares false both ways: refused.
  if (!(Date.parse(cert.valid_from) <= now && now < Date.parse(cert.valid_to))) return undefined;
  const id = spiffeIdOf(cert);
  return id ? parseServiceSpiffeId(id) : undefined;
}

/**
 * The service of a leaf certificate valid at `now` and naming a service of one of
 * `trustDomains` (the CA's, then its aliases); undefined otherwise.
 */
export function serviceOfClientCertificate(cert: ClientCertificate | undefined, trustDomains: readonly string[], now = Date.now()): string | undefined {
  const id = identityOfClientCertificate(cert, now);
  return id && trustDomains.includes(id.trustDomain) ? id.service : undefined;
}

/**
 * For a refusal's message: a valid client certificate that proved nothing because its trust
 * domain is not taken (a mesh moved to another --trust-domain without an alias for the old one)
 * says so, naming both; '' for any other.
 */
export function foreignTrustDomainNote(cert: ClientCertificate | undefined, trustDomains: readonly string[], now = Date.now()): string {
  const id = identityOfClientCertificate(cert, now);
  if (!id || trustDomains.includes(id.trustDomain)) return '';
  return `; its client certificate ${serviceSpiffeId(id.trustDomain, id.service)} is of trust domain ${id.trustDomain}, which this control plane (trust domain ${servedTrustDomains(trustDomains)}) does not take: start it with --trust-domain-alias ${id.trustDomain} until every sidecar has moved`;
}
