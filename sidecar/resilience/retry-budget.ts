/**
 * A retry budget per destination, in the manner of Linkerd's and Finagle's: over a sliding
 * window of the last 10 seconds, retries may be at most `ratio` × requests plus
 * `minPerSecond` for each second the window covers. It keeps a failing upstream from being
 * hammered by retry storms while still letting low-traffic callers retry.
 *
 * The window is a ring of one-second buckets of two counters; calls only bump numbers, so
 * the per-request cost is a clock read and a few array accesses, with no allocation.
 */
const BUCKETS = 10;
const BUCKET_MS = 1000;

export interface RetryBudgetPolicy {
  readonly ratio: number;
  readonly minPerSecond: number;
}

export class RetryBudget {
  private readonly requests = new Float64Array(BUCKETS);
  private readonly retries = new Float64Array(BUCKETS);
  private requestSum = 0;
  private retrySum = 0;
  /** Index (in whole seconds since the epoch) of the newest bucket. */
  private head: number;
  private readonly startSecond: number;

  constructor(
    private readonly policy: RetryBudgetPolicy,
    private readonly now: () => number = Date.now,
  ) {
    this.head = Math.floor(now() / BUCKET_MS);
    this.startSecond = this.head;
  }

  /** Counts one original request (not a retry) towards the window. */
  recordRequest(): void {
    const slot = this.advance();
    this.requests[slot]++;
    this.requestSum++;
  }

  /** Takes one retry from the budget; false when the budget is spent (the retry must not happen). */
  tryAcquireRetry(): boolean {
    const slot = this.advance();
    // Seconds the window covers so far: a fresh budget does not hand out 10 s of minimum at once.
    const seconds = Math.min(BUCKETS, this.head - this.startSecond + 1);
    const allowed = this.policy.ratio * this.requestSum + this.policy.minPerSecond * seconds;
    if (this.retrySum + 1 > allowed) return false;
    this.retries[slot]++;
    this.retrySum++;
    return true;
  }

  /** Retries still available right now (for /clusters and tests). */
  available(): number {
    this.advance();
    const seconds = Math.min(BUCKETS, this.head - this.startSecond + 1);
    return Math.max(0, Math.floor(this.policy.ratio * this.requestSum + this.policy.minPerSecond * seconds - this.retrySum));
  }

  /** Moves the window to the current second, clearing the buckets that slid out; returns the current slot. */
  private advance(): number {
    const second = Math.floor(this.now() / BUCKET_MS);
    if (second > this.head) {
      const steps = Math.min(BUCKETS, second - this.head);
      for (let i = 1; i <= steps; i++) {
        const slot = (this.head + i) % BUCKETS;
        this.requestSum -= this.requests[slot]!;
        this.retrySum -= this.retries[slot]!;
        this.requests[slot] = 0;
        this.retries[slot] = 0;
      }
      this.head = second;
    }
    return this.head % BUCKETS;
  }
}
