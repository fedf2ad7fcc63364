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

/**
 * A request in flight, as the drain's end sees it (an Exchange). The requests in flight are a
 * list threaded through these links rather than a Set: a hash table set and deleted on every
 * request is rehashed every few dozen of them, and once one of its tables is old, each dead
 * table keeps the next young one, and the requests it held, alive through scavenges (the
 * promotion chain `mux/stream-table.ts` was written to end).
 */
export interface InFlightRequest {
  /** The drain timeout ran out (`why`, for its answer): true if it answered, false if its answer had begun and is left to be cut. */
  cutOff(why: string): boolean;
  inFlightPrev: InFlightRequest | null;
  inFlightNext: InFlightRequest | null;
}

export class Lifecycle {
  /** The newest request in flight: the drain's end answers each (cutOff). */
  private newest: InFlightRequest | null = null;
  private count = 0;
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
    return this.count;
  }

  requestStarted(request: InFlightRequest): void {
    const next = this.newest;
    request.inFlightPrev = null;
    request.inFlightNext = next;
    if (next !== null) next.inFlightPrev = request;
    this.newest = request;
    this.count++;
  }

  requestEnded(request: InFlightRequest): void {
    const prev = request.inFlightPrev;
    const next = request.inFlightNext;
    // Not in the list: it ended already.
    if (prev === null && this.newest !== request) return;
    if (prev === null) this.newest = next;
    else prev.inFlightNext = next;
    if (next !== null) next.inFlightPrev = prev;
    request.inFlightPrev = null;
    request.inFlightNext = null;
    this.count--;
    if (this.count === 0 && this.idleWaiters.length > 0) {
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
    // A copy: an answer may end its request (requestEnded, unlinking it) as it is given.
    const requests: InFlightRequest[] = [];
    for (let r = this.newest; r !== null; r = r.inFlightNext) requests.push(r);
    let answered = 0;
    for (const request of requests) if (request.cutOff(why)) answered++;
    return answered;
  }
}
