/**
 * Readiness and draining. `/ready` is true once config, certificates (when configured) and a
 * healthy app are in hand, and false again while draining. Draining (SIGTERM, SIGINT or
 * POST /drain) makes every response carry `Connection: close` and waits for in-flight
 * requests to finish, up to the drain timeout.
 */
export interface ReadinessCheck {
  readonly name: string;
  /** The app's own outbound calls wait on it too (config, certificates; not the app's health). */
  readonly outbound: boolean;
  /** undefined when ready, else why not. */
  blocker(): string | undefined;
}

export class Lifecycle {
  inFlight = 0;
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

  requestStarted(): void {
    this.inFlight++;
  }

  requestEnded(): void {
    this.inFlight--;
    if (this.inFlight === 0 && this.idleWaiters.length > 0) {
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
}
