/**
 * Readiness and draining. `/ready` is true once config, certificates (when configured) and a
 * healthy app are in hand, and false again while draining. Draining (SIGTERM, SIGINT or
 * POST /drain) makes every response carry `Connection: close` and waits for in-flight
 * requests to finish, up to the drain timeout; at its end, those whose answer has not begun
 * are answered 503 (cutOff).
 */
export interface ReadinessCheck {
  readonly name: string;
  /** The app's own outbound calls wait on it too (config, certificates; not the app's health). */
  readonly outbound: boolean;
  /** undefined when ready, else why not. */
  blocker(): string | undefined;
}

/** A request in flight, as the drain's end sees it (an Exchange). */
export interface InFlightRequest {
  /** The drain timeout ran out (`why`, for its answer): true if it answered, false if its answer had begun and is left to be cut. */
  cutOff(why: string): boolean;
}

export class Lifecycle {
  /** A set, not a count: the drain's end answers each. */
  private readonly requests = new Set<InFlightRequest>();
  draining = false;
  private readonly checks: ReadinessCheck[] = [];
  private idleWaiters: (() => void)[] = [];

  addCheck(check: ReadinessCheck): void {
    this.checks.push(check);
  }

  /** Reasons the sidecar is not ready; empty when it is. `outbound`: only what the app's outbound calls wait on. */
  notReady(outbound = false): string[] {
    const out: string[] = [];
    if (this.draining && !outbound) out.push('draining');
    for (const c of this.checks) {
      if (outbound && !c.outbound) continue;
      const why = c.blocker();
      if (why !== undefined) out.push(`${c.name}: ${why}`);
    }
    return out;
  }

  get inFlight(): number {
    return this.requests.size;
  }

  requestStarted(request: InFlightRequest): void {
    this.requests.add(request);
  }

  requestEnded(request: InFlightRequest): void {
    if (!this.requests.delete(request)) return;
    if (this.requests.size === 0 && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** Starts draining; resolves when no request is in flight or after `timeoutMs`, whichever is first. Returns true when idle. */
  async drain(timeoutMs: number): Promise<boolean> {
    this.draining = true;
    if (this.inFlight === 0) return true;
    let timer: NodeJS.Timeout | undefined;
    const idle = new Promise<boolean>((resolve) => this.idleWaiters.push(() => resolve(true)));
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    const result = await Promise.race([idle, timeout]);
    clearTimeout(timer);
    return result;
  }

  /**
   * The drain timeout ran out with requests in flight: each whose answer has not begun gets
   * one now (`why` says so), rather than the closed connection the shutdown would give it.
   * Returns how many were answered.
   */
  cutOff(why: string): number {
    let answered = 0;
    // A copy: an answer may end its request (requestEnded) as it is given.
    for (const request of [...this.requests]) if (request.cutOff(why)) answered++;
    return answered;
  }
}
