/** Keepalive settings for connections to peer sidecars: the HTTP/2 upstream's sessions and the mux's connections. */

export interface Keepalive {
  /** Silence from the peer after which a PING goes out. */
  readonly intervalMs: number;
  /** How long the PING may go unanswered (by anything) before the connection is given up. */
  readonly timeoutMs: number;
}

/** As gRPC's keepalive defaults for servers' pings, shorter than TCP keepalive's minutes. */
export const DEFAULT_KEEPALIVE: Keepalive = { intervalMs: 10_000, timeoutMs: 5_000 };
