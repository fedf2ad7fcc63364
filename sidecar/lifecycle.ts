/**
 * Readiness and draining. `/ready` is true once config, certificates (when configured) and a
 * healthy app are in hand, and false again while draining. Draining (SIGTERM, SIGINT or
 * POST /drain) makes every response carry `Connection: close`; a shutdown waits for in-flight
 * requests to finish, up to the drain timeout, and then answers those whose answer has not
 * begun (cutOff). POST /drain sets no timeout: its requests finish whenever they do.
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
  /** Each resolves once at most `limit` requests are in flight (`settle`). */
  private waiters: { limit: number; resolve: () => void }[] = [];

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
    if (this.waiters.length > 0) this.wake();
  }

  private wake(): void {
    const count = this.count;
    const ready = this.waiters.filter((w) => w.limit >= count);
    if (ready.length === 0) return;
    this.waiters = this.waiters.filter((w) => w.limit < count);
    for (const w of ready) w.resolve();
  }

  /** Starts draining; resolves when no request is in flight or after `timeoutMs`, whichever is first. Returns true when idle. */
  drain(timeoutMs: number): Promise<boolean> {
    this.draining = true;
    return this.settle(0, timeoutMs);
  }

  /** Resolves true once at most `limit` requests are in flight, false after `timeoutMs` if that is sooner. */
  settle(limit: number, timeoutMs: number): Promise<boolean> {
    if (this.count <= limit) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve(false);
      }, timeoutMs);
      const waiter = {
        limit,
        resolve: () => {
          clearTimeout(timer);
          resolve(true);
        },
      };
      this.waiters.push(waiter);
    });
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
