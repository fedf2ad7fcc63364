/**
 * Why the CA refused something. Each code maps to one gRPC status in the Sign service, so a
 * sidecar (and its operator) sees a precise, stable reason.
 */
export type CaErrorCode =
  | 'bad-csr' // not a PEM CSR, or its signature does not verify
  | 'identity-mismatch' // the CSR asks for another identity than the caller is allowed
  | 'unauthenticated' // no valid token and no valid client certificate
  | 'bad-ca' // an operator-supplied CA that cannot be used
  | 'rotation'; // a root rotation step that cannot be taken now

export class CaError extends Error {
  override name = 'CaError';
  constructor(
    readonly code: CaErrorCode,
    message: string,
  ) {
    super(message);
  }
}
