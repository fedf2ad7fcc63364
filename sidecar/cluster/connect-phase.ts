/**
 * The connect phase's errors. Whether a system error came from opening a connection, before
 * any byte of a request could go out. Its code alone does not say: an open connection ends
 * with ETIMEDOUT when its retransmissions give up, or with the ICMP error that came meanwhile
 * (EHOSTUNREACH, ENETUNREACH, ECONNREFUSED), and by then part of a request may have reached
 * the app.
 */
import { codedError } from './upstream-dispatcher.js';

/** A TLS transport's TCP connection opened but its handshake did not finish in time (cluster/h2-upstream.ts): nothing was sent. */
export const TLS_HANDSHAKE_TIMEOUT = 'ERR_SKEIN_TLS_HANDSHAKE_TIMEOUT';

/** Error code of a connection whose TLS handshake failed once the endpoint was reached: nothing was sent. */
export const TLS_HANDSHAKE_FAILED = 'ERR_SKEIN_TLS_HANDSHAKE';

/**
 * The peer refused this sidecar's certificate, for the reason `why`: it read nothing sent on
 * the connection. Made by the mux and HTTP/2 clients from a peer sidecar's word
 * (mux/upstream.ts, h2-upstream.ts) and from a TLS alert (identity/outbound-connector.ts).
 */
export function refusedByPeer(why: string): Error {
  return codedError(TLS_HANDSHAKE_FAILED, `the peer refused this sidecar's certificate: ${why}`);
}

/**
 * The connect timeout of a TLS transport whose TCP connection had opened, in every connector
 * alike (cluster/h2-upstream.ts, identity/outbound-connector.ts): a handshake failure, where
 * one with no TCP connection is an endpoint not reached.
 */
export function handshakeTimedOut(timeoutMs: number): Error {
  return codedError(TLS_HANDSHAKE_TIMEOUT, `the TLS handshake did not complete within ${timeoutMs} ms`);
}

/**
 * The error is connect(2)'s: node's own, or the AggregateError node's connect makes when every
 * address of a name failed (autoSelectFamily), which has the first one's code but no syscall.
 */
export function failedConnecting(err: Error & { syscall?: string }): boolean {
  if (err instanceof AggregateError) return err.errors.every((e: { syscall?: string }) => e.syscall === 'connect');
  return err.syscall === 'connect';
}
