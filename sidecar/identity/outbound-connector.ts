/**
 * The undici connector for connections to peer sidecars: TLS with this sidecar's identity,
 * the SPIFFE check for the destination service, and every handshake failure reported with
 * its reason (for `skein_tls_handshake_failures_total` and the log) before undici sees it.
 */
import type { SecureContext } from 'node:tls';
import { buildConnector } from 'undici';
import type { SessionConnector } from '../cluster/h2-upstream.js';
import type { TlsIdentity } from './provider.js';
import { outboundConnectOptions, outboundHandshakeFailureReason } from './tls-options.js';

export type HandshakeFailureListener = (reason: string, err: Error & { code?: string }) => void;

/** `allowH2` offers h2 by ALPN (gRPC destinations); HTTP/1.1 traffic stays on HTTP/1.1. */
export function peerConnector(identity: TlsIdentity, context: SecureContext, destination: string, onFailure: HandshakeFailureListener, allowH2 = false): buildConnector.connector {
  const connector = buildConnector({ ...outboundConnectOptions(identity, context, destination), allowH2 } as buildConnector.BuildOptions);
  return (options, callback) =>
    connector(options, (err, socket) => {
      if (err) {
        const reason = outboundHandshakeFailureReason(err as Error & { code?: string });
        // Refused connections and the like are not handshake failures.
        if (reason !== 'other') onFailure(reason, err as Error & { code?: string });
      }
      (callback as (e: Error | null, s: unknown) => void)(err, socket);
    });
}

/** The same connector, opening the transport of an HTTP/2 session (sidecar/cluster/h2-upstream.ts) to `address:port`. */
export function peerSessionConnector(connector: buildConnector.connector, address: string, port: number): SessionConnector {
  const options = { hostname: address, host: address, protocol: 'https:', port: String(port), servername: undefined, localAddress: null, httpSocket: undefined };
  return (callback) => connector(options as unknown as buildConnector.Options, callback as never);
}
