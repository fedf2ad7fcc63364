/**
 * The sidecar's mTLS identity: its leaf certificate, private key and the trust bundle, in PEM.
 * Static mode reads them from files; with a control plane they are issued from a CSR and
 * renewed before expiry. On every change the sidecar swaps the TLS context for new
 * connections while existing ones finish.
 */
export interface TlsIdentity {
  readonly certPem: string;
  readonly keyPem: string;
  /** One or more root certificates (several during root rotation). */
  readonly caPem: string;
  /** SPIFFE ID from the certificate's URI SAN, when it has one. */
  readonly spiffeId?: string;
  readonly notAfter: Date;
  /**
   * Trust domains whose identities peers may hold besides this one's own: those the control
   * plane takes (its own, then its aliases while the mesh moves to another --trust-domain).
   */
  readonly peerTrustDomains?: readonly string[];
}

export interface IdentityProvider {
  /** Undefined until the first certificate is in hand. */
  current(): TlsIdentity | undefined;
  onChange(listener: (identity: TlsIdentity) => void): void;
  close(): Promise<void>;
}
