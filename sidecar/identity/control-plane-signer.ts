/**
 * The sidecar's side of the `Sign` RPC. Each call opens a short-lived TLS channel to the
 * control plane that trusts the operator's CA file together with the latest bundle the CA
 * sent (so a root rotation never locks a sidecar out), and, once the sidecar has a
 * certificate, presents it as client certificate: that is what authorises a renewal.
 */
import * as grpc from '@grpc/grpc-js';
import { loadMeshProto } from '../../common/proto/mesh.js';
import { controlPlaneTls } from '../control-plane/channel.js';
import type { TlsIdentity } from './provider.js';

export interface SignResult {
  readonly certPem: string;
  readonly bundlePem: string;
}

/** Sends a CSR; `current` is the certificate to authenticate with, when there is one. */
export type CsrSigner = (csrPem: string, current: TlsIdentity | undefined) => Promise<SignResult>;

/** A refused or failed Sign call, with the gRPC status and the control plane's reason. */
export class SignError extends Error {
  override name = 'SignError';
  constructor(
    message: string,
    readonly grpcCode: number | undefined,
  ) {
    super(message);
  }

  /** A refusal that asking again will not change (unlike an unreachable control plane). */
  get permanent(): boolean {
    return this.grpcCode === grpc.status.UNAUTHENTICATED || this.grpcCode === grpc.status.PERMISSION_DENIED || this.grpcCode === grpc.status.INVALID_ARGUMENT;
  }
}

export interface ControlPlaneSignerOptions {
  /** HOST:PORT of the control plane's gRPC port. */
  readonly address: string;
  /** The trust bundle file given with --ca-file; re-read on every call, since the control plane rewrites it during a rotation. */
  readonly caFile: string;
  readonly token?: string;
  readonly deadlineMs?: number;
}

/**
 * Says whether the CA answered (a refusal, with its reason) or was never reached, since the
 * fix differs: a new token or identity, or a CA file that verifies the control plane.
 */
function signFailure(address: string, err: grpc.ServiceError): string {
  const details = (err.details || err.message).replace(/\s*Resolution note:\s*$/, '');
  if (err.code !== grpc.status.UNAVAILABLE) return `control plane at ${address} refused the CSR: ${details}`;
  const hint = /certificate/i.test(details) ? ' (does --ca-file hold the control plane\'s ca.crt?)' : '';
  return `control plane at ${address} could not be reached: ${details}${hint}`;
}

export function controlPlaneSigner(options: ControlPlaneSignerOptions): CsrSigner {
  const { Client } = loadMeshProto();
  return async (csrPem, current) => {
    const tls = await controlPlaneTls(options.address, options.caFile, current);
    const client = new Client(options.address, tls.credentials, tls.channelOptions);
    try {
      const response = await new Promise<{ certPem: string; bundlePem: string }>((resolve, reject) => {
        const deadline = new Date(Date.now() + (options.deadlineMs ?? 10_000));
        // The control plane prefers a valid client certificate; the token is the fallback
        // (e.g. after a suspended process let its certificate expire).
        client.Sign({ csrPem, token: options.token ?? '' }, { deadline }, (err, res) => {
          if (err) reject(new SignError(signFailure(options.address, err), err.code));
          else resolve(res!);
        });
      });
      return { certPem: response.certPem, bundlePem: response.bundlePem };
    } finally {
      client.close();
    }
  };
}
