/**
 * The undici connector for connections to peer sidecars: TLS with this sidecar's identity,
 * the SPIFFE check for the destination service, and every handshake failure reported with
 * its reason (for `skein_tls_handshake_failures_total` and the log) before undici sees it.
 */
import { connect as tlsConnect, type ConnectionOptions, type SecureContext, type TLSSocket } from 'node:tls';
import { buildConnector } from 'undici';
import { socketConnector, type SessionConnector } from '../cluster/h2-upstream.js';
import { ALPN as MUX_ALPN } from '../mux/frames.js';
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

/** Error code of a peer that did not take the mux by ALPN (not a Skein inbound listener): nothing was sent. */
export const MUX_NOT_NEGOTIATED = 'ERR_SKEIN_MUX_NOT_NEGOTIATED';

/**
 * The transport of a mux connection (sidecar/mux/) to a peer sidecar of `destination`: TLS
 * with this identity, the SPIFFE check, ALPN `skein-mux/1`, and handshake failures reported
 * as the undici connector reports them.
 */
export function peerMuxConnector(options: ConnectionOptions, address: string, port: number, onFailure: HandshakeFailureListener): SessionConnector {
  const open = socketConnector(() => tlsConnect({ host: address, port, ...options, ALPNProtocols: [MUX_ALPN] }), 'secureConnect');
  return (callback) =>
    open((err, socket) => {
      if (err) {
        const reason = outboundHandshakeFailureReason(err as Error & { code?: string });
        if (reason !== 'other') onFailure(reason, err as Error & { code?: string });
      } else if ((socket as TLSSocket).alpnProtocol !== MUX_ALPN) {
        socket!.destroy();
        callback(Object.assign(new Error(`the peer at ${address}:${port} does not speak ${MUX_ALPN} (ALPN)`), { code: MUX_NOT_NEGOTIATED }), null);
        return;
      }
      callback(err, socket);
    });
}
