/**
 * The connectors for connections to peer sidecars: TLS with this sidecar's identity, the
 * SPIFFE check for the destination service, and every handshake failure reported with its
 * reason (for `skein_tls_handshake_failures_total` and the log) and made a connect failure
 * (`connectorFailure`) before the upstream client sees it; so is a peer's refusal of this
 * sidecar's certificate that comes once the connection is open (`peerRefusal`).
 */
import type { Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions, type SecureContext, type TLSSocket } from 'node:tls';
import { buildConnector } from 'undici';
import { failedConnecting, handshakeTimedOut, refusedByPeer, TLS_HANDSHAKE_FAILED, TLS_HANDSHAKE_TIMEOUT } from '../cluster/connect-phase.js';
import { CONNECT_TIMEOUT_MS, socketConnector, type SessionConnector } from '../cluster/h2-upstream.js';
import { codedError } from '../cluster/upstream-dispatcher.js';
import { ALPN as MUX_ALPN } from '../mux/frames.js';
import type { TlsIdentity } from './provider.js';
import { outboundConnectOptions, outboundHandshakeFailureReason, refusalAlert } from './tls-options.js';

export type HandshakeFailureListener = (reason: string, err: Error & { code?: string }) => void;

/**
 * A connector's failure, reported when it is a handshake failure, as the attempt loop must
 * read it. Every one comes before a request could go out, but only those of reaching the
 * endpoint (refused, unreachable, the connect timeout) and the handshake that outlasted the
 * connect timeout (`TLS_HANDSHAKE_TIMEOUT`) have codes that say so: the rest (a
 * certificate refused, a plain HTTP app answering the ClientHello with its own bytes, a peer
 * that resets or closes the connection mid-handshake) would read as a reset after sending,
 * retried as one and a POST held possibly delivered. They become `TLS_HANDSHAKE_FAILED`.
 */
function connectorFailure(err: Error & { code?: string; syscall?: string; reason?: string }, onFailure: HandshakeFailureListener): Error {
  return reportHandshakeFailure(err, onFailure) ? handshakeFailure(err) : err;
}

/** Reports a connector's failure that is a handshake failure; false for one of reaching the endpoint. */
function reportHandshakeFailure(err: Error & { code?: string; syscall?: string }, onFailure: HandshakeFailureListener): boolean {
  // Refused connections and the like are not handshake failures.
  if (failedConnecting(err) || err.syscall === 'getaddrinfo' || err.code === 'UND_ERR_CONNECT_TIMEOUT') return false;
  const reason = outboundHandshakeFailureReason(err);
  if (reason !== 'other') onFailure(reason, err);
  return true;
}

/** A handshake failure as `TLS_HANDSHAKE_FAILED`, its text naming the cause; a stalled one's code already says nothing was sent. */
function handshakeFailure(err: Error & { code?: string; reason?: string }): Error {
  if (err.code === TLS_HANDSHAKE_TIMEOUT) return err;
  const alert = refusalAlert(err.code);
  if (alert !== undefined) return refusedByPeer(`${alert} (${err.code})`);
  const cause = err.code === undefined ? '' : ` with ${err.code}`;
  return codedError(TLS_HANDSHAKE_FAILED, `the TLS handshake failed${cause}: ${handshakeCause(err)}`);
}

function handshakeCause(err: Error & { code?: string; reason?: string }): string {
  if (err.code === 'ERR_SSL_WRONG_VERSION_NUMBER') return 'the endpoint does not speak TLS';
  // Node says ECONNRESET for a close (FIN) before the handshake's end as for a reset.
  if (err.code === 'ECONNRESET' || err.code === 'EPIPE') return 'the endpoint closed the connection';
  // OpenSSL's errors carry their reason apart from a message of library and source lines.
  return err.reason ?? err.message;
}

/**
 * The connect failure an open connection's error stands for when it is the peer refusing this
 * sidecar's certificate, else undefined. Under TLS 1.3 a client's handshake is over before the
 * server has judged the client's certificate, so the refusal comes on a connection this side
 * already writes requests to: as the peer's alert, or as the mux's own error made from a Skein
 * inbound's refusal (mux/upstream.ts; node's TLS server sends no alert). The peer never took
 * the connection and read none of it, as long as no byte of an answer had come: an alert after
 * one is not read so, and stays the reset it was.
 */
export function peerRefusal(err: Error & { code?: string }, socket: Socket): Error | undefined {
  // After the handshake this code comes only from the mux's refusals.
  if (err.code === TLS_HANDSHAKE_FAILED) return err;
  return refusalAlert(err.code) !== undefined && socket.bytesRead === 0 ? handshakeFailure(err) : undefined;
}

/** Reports a refusal of this sidecar's certificate that ends a connection once it is open (`peerRefusal`). */
function reportRefusal(socket: Socket, onFailure: HandshakeFailureListener): void {
  socket.once('error', (err: Error & { code?: string }) => {
    const refusal = peerRefusal(err, socket);
    if (refusal !== undefined) onFailure('refused-by-peer', refusal);
  });
}

/**
 * `allowH2` offers h2 by ALPN (gRPC destinations); HTTP/1.1 traffic stays on HTTP/1.1.
 * `timeoutMs` bounds the TCP connection and the handshake together.
 */
export function peerConnector(identity: TlsIdentity, context: SecureContext, destination: string, onFailure: HandshakeFailureListener, allowH2 = false, timeoutMs = CONNECT_TIMEOUT_MS): buildConnector.connector {
  // No TLS session resumption (undici caches sessions by default): a resumed session presents
  // the peer certificate of the handshake that began it, and node checks neither its dates
  // (OpenSSL keeps that verdict) nor its SPIFFE ID (checkServerIdentity is skipped) again, so a
  // peer whose leaf expired was still taken for as long as resumptions chained. The connectors
  // over node's tls.connect never resumed; gRPC's connections are long-lived, so a full
  // handshake each costs next to nothing.
  const connector = buildConnector({ ...outboundConnectOptions(identity, context, destination), allowH2, timeout: timeoutMs, maxCachedSessions: 0 } as buildConnector.BuildOptions);
  return (options, callback) => {
    let tcpOpen = false;
    // undici's timeout destroys the socket before the callback hears of it, by when it is no
    // longer `connecting` either way, so how far the connection got is followed from the start.
    // Its connector returns the socket, though its types do not say so (without it a stall
    // stays the uncounted connect timeout it was).
    const socket = connector(options, (err, socket) => {
      if (err === null) reportRefusal(socket, onFailure);
      const failure = err === null ? null : connectorFailure(stalledHandshake(err, tcpOpen, timeoutMs) ?? err, onFailure);
      (callback as (e: Error | null, s: unknown) => void)(failure, socket);
    }) as unknown as Socket | undefined;
    socket?.once('connect', () => (tcpOpen = true));
    return socket;
  };
}

/** undici's connect timeout on a TCP connection that had opened, as the handshake's own timeout; undefined for any other error. */
function stalledHandshake(err: Error & { code?: string }, tcpOpen: boolean, timeoutMs: number): Error | undefined {
  return tcpOpen && err.code === 'UND_ERR_CONNECT_TIMEOUT' ? handshakeTimedOut(timeoutMs) : undefined;
}

/** The same connector, opening the transport of an HTTP/2 session (sidecar/cluster/h2-upstream.ts) to `address:port`. */
export function peerSessionConnector(connector: buildConnector.connector, address: string, port: number): SessionConnector {
  const options = { hostname: address, host: address, protocol: 'https:', port: String(port), servername: undefined, localAddress: null, httpSocket: undefined };
  return (callback) => connector(options as unknown as buildConnector.Options, callback as never);
}

/** Error code of a peer that did not take the mux by ALPN (not a Skein inbound listener): nothing was sent. */
export const MUX_NOT_NEGOTIATED = 'ERR_SKEIN_MUX_NOT_NEGOTIATED';

/**
 * The transport of a connection to a peer sidecar, offering `alpn`: TLS with `options` (this
 * identity and, given a SPIFFE ID, its check), failures reported and made connect failures
 * as the undici connector's are.
 */
export function peerTlsConnector(options: ConnectionOptions, address: string, port: number, alpn: string, onFailure: HandshakeFailureListener): SessionConnector {
  const open = socketConnector(() => tlsConnect({ host: address, port, ...options, ALPNProtocols: [alpn] }), 'secureConnect');
  return (callback) =>
    open((err, socket) => {
      if (err === null) reportRefusal(socket!, onFailure);
      callback(err === null ? null : connectorFailure(err, onFailure), socket);
    });
}

/**
 * A TLS connection to a peer sidecar, handed over while it opens to a caller that follows its
 * events itself (a WebSocket upgrade, sidecar/stages/upgrade.ts): its handshake failures are
 * reported as the connectors' are.
 */
export function peerSocket(options: ConnectionOptions, address: string, port: number, onFailure: HandshakeFailureListener): TLSSocket {
  const socket = tlsConnect({ host: address, port, ...options });
  const onError = (err: Error): void => void reportHandshakeFailure(err, onFailure);
  socket.once('error', onError);
  socket.once('secureConnect', () => socket.off('error', onError));
  return socket;
}

/** The transport of a mux connection (sidecar/mux/) to a peer sidecar: `peerTlsConnector`'s, by ALPN `skein-mux/1`. */
export function peerMuxConnector(options: ConnectionOptions, address: string, port: number, onFailure: HandshakeFailureListener): SessionConnector {
  const open = peerTlsConnector(options, address, port, MUX_ALPN, onFailure);
  return (callback) =>
    open((err, socket) => {
      if (err === null && (socket as TLSSocket).alpnProtocol !== MUX_ALPN) {
        socket!.destroy();
        callback(Object.assign(new Error(`the peer at ${address}:${port} does not speak ${MUX_ALPN} (ALPN)`), { code: MUX_NOT_NEGOTIATED }), null);
        return;
      }
      callback(err, socket);
    });
}
