/**
 * Inbound peer verification: a caller must present a client certificate that chains to the
 * trust bundle, is within its validity, is not a CA certificate, and carries exactly one
 * service SPIFFE ID of our trust domain. The inbound TLS server requests certificates without letting OpenSSL reject
 * them (`rejectUnauthorized: false`), so that here every refusal gets a precise reason for
 * `skein_tls_handshake_failures_total{reason}` and the log, and the socket is closed before
 * any request on it is read (a peer sidecar on the mux told why: sidecar/listeners.ts).
 */
import type { Http2Session } from 'node:http2';
import type { TLSSocket } from 'node:tls';
import { parseServiceSpiffeId, spiffeIdOf } from '../../common/identity/spiffe.js';

export type PeerRejection =
  | 'no-client-certificate'
  | 'expired-certificate'
  | 'not-yet-valid-certificate'
  | 'untrusted-certificate'
  | 'no-spiffe-id'
  | 'foreign-trust-domain';

export interface PeerIdentity {
  readonly service: string;
  readonly spiffeId: string;
}

export type PeerVerdict = { readonly ok: true; readonly peer: PeerIdentity } | { readonly ok: false; readonly reason: PeerRejection; readonly detail: string };

function reject(reason: PeerRejection, detail: string): PeerVerdict {
  return { ok: false, reason, detail };
}

/** Maps an OpenSSL verification code (`socket.authorizationError`) to a rejection reason. */
export function verifyErrorReason(code: string): PeerRejection {
  if (code === 'CERT_HAS_EXPIRED') return 'expired-certificate';
  if (code === 'CERT_NOT_YET_VALID') return 'not-yet-valid-certificate';
  return 'untrusted-certificate';
}

/** Judges the peer of a finished handshake; `trustDomains`: this sidecar's own first, then any others the mesh takes. */
export function verifyInboundPeer(socket: TLSSocket, trustDomains: readonly string[]): PeerVerdict {
  const cert = socket.getPeerCertificate();
  if (!cert || Object.keys(cert).length === 0) return reject('no-client-certificate', 'the caller presented no client certificate');
  if (!socket.authorized) {
    const code = String(socket.authorizationError ?? 'UNKNOWN');
    return reject(verifyErrorReason(code), `client certificate refused: ${code}`);
  }
  // A resumed session keeps the verdict of the handshake that began it, when the certificate
  // may still have been valid: OpenSSL does not check its dates again.
  if (socket.isSessionReused() && Date.parse(cert.valid_to) <= Date.now()) {
    return reject('expired-certificate', `client certificate expired at ${cert.valid_to} (resumed session)`);
  }
  // A CA certificate is no workload identity (SPIFFE X509-SVID §5.2), though OpenSSL takes one as a leaf.
  if (cert.ca) return reject('untrusted-certificate', 'client certificate is a CA certificate (basicConstraints CA:TRUE), not a workload leaf');
  const spiffeId = spiffeIdOf(cert);
  if (!spiffeId) return reject('no-spiffe-id', 'client certificate has no single SPIFFE URI SAN');
  const id = parseServiceSpiffeId(spiffeId);
  if (!id) return reject('no-spiffe-id', `client certificate identity ${spiffeId} is not a service identity`);
  if (!trustDomains.includes(id.trustDomain)) return reject('foreign-trust-domain', `client identity ${spiffeId} is outside trust domain ${trustDomains.join(', ')}`);
  return { ok: true, peer: { service: id.service, spiffeId } };
}

export interface PeerVerificationOptions {
  /** Read on every handshake, since they come from the current identity: its own first; none without one. */
  trustDomains(): readonly string[];
  onRejected(reason: PeerRejection, detail: string, socket: TLSSocket): void;
}

/**
 * Verifies every inbound connection as it completes its handshake (`admit`, called by the
 * listener, which closes refused ones) and remembers the identity of accepted ones for `peerOf`.
 */
export class InboundPeers {
  private readonly peers = new WeakMap<TLSSocket, PeerIdentity>();
  /** HTTP/2 requests reach their session's socket only through a proxy object, unknown to `peers`. */
  private readonly sessions = new WeakMap<Http2Session, PeerIdentity | null>();

  constructor(private readonly options: PeerVerificationOptions) {}

  /**
   * Verifies one socket, before any of it is read: undefined for a caller let in, whose
   * identity is kept; for one refused (counted and logged by `onRejected`), the text it is
   * told, its reason label alone (the detail goes to the log: a caller not yet trusted is
   * told no more than a TLS alert would), for the listener to send before closing the socket.
   */
  admit(socket: TLSSocket): string | undefined {
    const trustDomains = this.options.trustDomains();
    const verdict: PeerVerdict = trustDomains.length > 0
      ? verifyInboundPeer(socket, trustDomains)
      : reject('untrusted-certificate', 'this sidecar has no identity yet');
    if (!verdict.ok) {
      this.options.onRejected(verdict.reason, verdict.detail, socket);
      return verdict.reason;
    }
    this.peers.set(socket, verdict.peer);
    return undefined;
  }

  /** The verified identity of the caller on this socket (undefined for an unverified socket). */
  peerOf(socket: TLSSocket): PeerIdentity | undefined {
    return this.peers.get(socket);
  }

  /**
   * The verified identity of the caller on an HTTP/2 session, read from its certificate on
   * the session's first request and remembered for the rest (reading a peer certificate
   * builds a whole object tree: per request it cost 8% of an inbound gRPC sidecar's time).
   * Refused peers were closed at the handshake, so this only names accepted ones.
   */
  peerOfSession(session: Http2Session): PeerIdentity | undefined {
    let peer = this.sessions.get(session);
    // A destroyed session's socket proxy throws on every access; its requests cannot be answered anyway.
    if (peer === undefined && !session.destroyed) {
      const trustDomains = this.options.trustDomains();
      const verdict = trustDomains.length > 0 && session.socket ? verifyInboundPeer(session.socket as TLSSocket, trustDomains) : undefined;
      peer = verdict?.ok ? verdict.peer : null;
      this.sessions.set(session, peer);
    }
    return peer ?? undefined;
  }
}
