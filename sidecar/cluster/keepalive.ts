/**
 * Keepalive for connections to peer sidecars (the HTTP/2 upstream's sessions, the mux's
 * connections): a connection that has read nothing for `intervalMs` sends a ping, and one
 * that then reads nothing for `timeoutMs` more is given up. Silence is read off the socket's
 * byte count on a timer, so the read path does no keepalive work per chunk, and any bytes
 * (a long answer ahead of the ping's) count as an answer.
 */

export interface Keepalive {
  /** Silence from the peer after which a PING goes out. */
  readonly intervalMs: number;
  /** How long the PING may go unanswered (by anything) before the connection is given up. */
  readonly timeoutMs: number;
}

/**
 * Idle time before the kernel's TCP keepalive probes on connections between sidecars (its
 * interval and count stay the system's): the only liveness check a byte splice such as a
 * WebSocket tunnel has, where a peer host that vanished without a FIN would otherwise hold
 * the tunnel and its app connection for ever.
 */
export const TCP_KEEPALIVE_IDLE_MS = 30_000;

/** As gRPC's keepalive defaults for servers' pings, shorter than TCP keepalive's minutes. */
export const DEFAULT_KEEPALIVE: Keepalive = { intervalMs: 10_000, timeoutMs: 5_000 };

/** One connection's keepalive; `stop()` it when the connection closes. */
export class KeepaliveTimer {
  private readonly timer: NodeJS.Timeout;
  /** Bytes read at the last tick; while a ping is out, also those read when it went out. */
  private lastRead: number;
  /** Armed while a ping waits for an answer. */
  private pingTimer: NodeJS.Timeout | undefined = undefined;

  /**
   * `bytesRead` tells how many bytes the connection has read so far (a socket's `bytesRead`,
   * which a TLS socket counts in cleartext as it arrives); `ping` sends one, or returns false
   * when it cannot now (the next tick tries again); `giveUp` closes the connection.
   */
  constructor(
    private readonly keepalive: Keepalive,
    private readonly bytesRead: () => number,
    private readonly ping: () => boolean,
    private readonly giveUp: () => void,
  ) {
    this.lastRead = bytesRead();
    this.timer = setInterval(keepaliveTick, keepalive.intervalMs, this);
    // Neither timer may hold the process open: an idle connection is checked, not kept.
    this.timer.unref();
  }

  tick(): void {
    const read = this.bytesRead();
    if (read !== this.lastRead) {
      this.lastRead = read;
      // Read since the ping went out: answered, and a silent next tick may ping again.
      clearTimeout(this.pingTimer);
      this.pingTimer = undefined;
      return;
    }
    if (this.pingTimer !== undefined || !this.ping()) return;
    this.pingTimer = setTimeout(pingUnanswered, this.keepalive.timeoutMs, this);
    this.pingTimer.unref();
  }

  unanswered(): void {
    this.pingTimer = undefined;
    if (this.bytesRead() === this.lastRead) this.giveUp();
  }

  stop(): void {
    clearInterval(this.timer);
    clearTimeout(this.pingTimer);
  }
}

function keepaliveTick(k: KeepaliveTimer): void {
  k.tick();
}

function pingUnanswered(k: KeepaliveTimer): void {
  k.unanswered();
}
