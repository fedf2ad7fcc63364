/**
 * The connect phase's errors. Whether a system error came from opening a connection, before
 * any byte of a request could go out. Its code alone does not say: an open connection ends with ETIMEDOUT when its
 * retransmissions give up, or with the ICMP error that came meanwhile (EHOSTUNREACH,
 * ENETUNREACH, ECONNREFUSED), and by then part of a request may have reached the app.
 */

/** A TLS transport's TCP connection opened but its handshake did not finish in time (cluster/h2-upstream.ts): nothing was sent. */
export const TLS_HANDSHAKE_TIMEOUT = 'ERR_SKEIN_TLS_HANDSHAKE_TIMEOUT';

/**
 * The error is connect(2)'s: node's own, or the AggregateError node's connect makes when every
 * address of a name failed (autoSelectFamily), which has the first one's code but no syscall.
 */
export function failedConnecting(err: Error & { syscall?: string }): boolean {
  if (err instanceof AggregateError) return err.errors.every((e: { syscall?: string }) => e.syscall === 'connect');
  return err.syscall === 'connect';
}
