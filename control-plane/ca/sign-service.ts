/**
 * The `Sign` RPC of mesh.proto: a sidecar sends a CSR and proves who it is with a bootstrap
 * token (first issue) or with its current certificate as TLS client certificate (renewal).
 * The CA then signs only the identity that proof names; anything else is refused with a
 * gRPC status and a message that says exactly why.
 */
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../../common/log.js';
import type { SignRequest, SignResponse } from '../../common/proto/mesh.js';
import type { CertificateAuthority } from './authority.js';
import { foreignTrustDomainNote, serviceOfClientCertificate } from './client-identity.js';
import { CaError, type CaErrorCode } from './errors.js';

export type SignOutcome = 'issued' | CaErrorCode;

export interface SignServiceDeps {
  readonly ca: CertificateAuthority;
  /** The service a bootstrap token was issued for; throws (with a message) when it cannot be used. */
  verifyToken(token: string): Promise<string>;
  readonly logger: Logger;
  /** For a metric of issued and refused CSRs. */
  onOutcome?(outcome: SignOutcome, service: string | undefined): void;
}

const STATUS: Record<CaErrorCode, grpc.status> = {
  'bad-csr': grpc.status.INVALID_ARGUMENT,
  'identity-mismatch': grpc.status.PERMISSION_DENIED,
  unauthenticated: grpc.status.UNAUTHENTICATED,
  'bad-ca': grpc.status.FAILED_PRECONDITION,
  rotation: grpc.status.FAILED_PRECONDITION,
};

type SignCall = grpc.ServerUnaryCall<SignRequest, SignResponse>;

async function authorisedService(call: SignCall, deps: SignServiceDeps): Promise<string> {
  // TLS checked the chain; the dates are checked again, for a resumed session (client-identity.ts).
  const cert = call.getAuthContext()?.sslPeerCertificate;
  const byCert = serviceOfClientCertificate(cert, deps.ca.trustDomains);
  if (byCert) return byCert;
  const note = foreignTrustDomainNote(cert, deps.ca.trustDomains);
  if (!call.request.token) throw new CaError('unauthenticated', `no bootstrap token and no valid client certificate${note}`);
  try {
    return await deps.verifyToken(call.request.token);
  } catch (err) {
    throw new CaError('unauthenticated', `${(err as Error).message}${note}`);
  }
}

export function createSignHandler(deps: SignServiceDeps): grpc.handleUnaryCall<SignRequest, SignResponse> {
  return (call, callback) => {
    let service: string | undefined;
    authorisedService(call, deps)
      .then((s) => {
        service = s;
        const leaf = deps.ca.signCsr(call.request.csrPem, s);
        deps.onOutcome?.('issued', s);
        callback(null, { certPem: leaf.certPem, bundlePem: leaf.bundlePem, expiryUnix: Math.floor(leaf.notAfter.getTime() / 1000) });
      })
      .catch((err: unknown) => {
        if (!(err instanceof CaError)) {
          deps.logger.error({ err }, 'signing a CSR failed');
          callback({ code: grpc.status.INTERNAL, details: 'internal error while signing' });
          return;
        }
        deps.onOutcome?.(err.code, service);
        deps.logger.warn({ reason: err.code, service, peer: call.getPeer() }, `refused CSR: ${err.message}`);
        callback({ code: STATUS[err.code], details: err.message });
      });
  };
}
