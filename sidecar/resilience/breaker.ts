/**
 * The circuit breaker of one service+subset, on opossum (SPEC §1 names it): opossum owns the
 * rolling window, the error-rate and volume thresholds, and the open → half-open → closed
 * state machine with its reset timer. Timeouts stay ours (the attempt loop's), so opossum's
 * is off.
 *
 * The proxy's attempts are callback-driven, while opossum is driven through `fire()`. So an
 * admitted attempt fires an action whose promise stays pending until `release(success)`
 * settles it; opossum then counts the outcome and trips or closes the circuit exactly as it
 * would for a wrapped async call. `tryAcquire()` checks the state first and never fires
 * while the circuit is open, so rejected requests cost nothing but a flag read.
 *
 * `maxConcurrent` is our own counter rather than opossum's `capacity`: opossum counts a full
 * semaphore as a failure, and an overloaded-but-healthy upstream must not open the circuit.
 * Release order does not matter: every pending attempt is equivalent to opossum (we keep no
 * per-attempt data), so `release` settles any one of them.
 */
import Opossum from 'opossum';
import type { CircuitBreakerPolicy } from '../../common/config/schema.js';

export type CircuitState = 'closed' | 'open' | 'half-open';

/** Metric encoding of `skein_circuit_state`. */
export const CIRCUIT_STATE_VALUE: Readonly<Record<CircuitState, number>> = { closed: 0, open: 1, 'half-open': 2 };

export interface BreakerHooks {
  onStateChange?(state: CircuitState): void;
  /** A request refused because the circuit is open or `maxConcurrent` attempts are in flight. */
  onReject?(): void;
}

const FAILED = Object.freeze(Object.assign(new Error('attempt failed'), { stack: '' }));
const ignore = (): void => {};

export class CircuitBreaker {
  private readonly opossum: Opossum<[], void>;
  private readonly resolvers: Array<() => void> = [];
  private readonly rejecters: Array<(err: Error) => void> = [];
  private inFlight = 0;
  private current: CircuitState = 'closed';
  private rejections = 0;

  constructor(
    private readonly policy: CircuitBreakerPolicy,
    private readonly hooks: BreakerHooks = {},
  ) {
    const window = Math.max(1, policy.rollingWindow);
    this.opossum = new Opossum(this.pending, {
      timeout: false,
      errorThresholdPercentage: policy.errorThresholdPercentage,
      volumeThreshold: policy.volumeThreshold,
      resetTimeout: policy.resetTimeout,
      rollingCountTimeout: window,
      rollingCountBuckets: Math.min(10, window),
      // Percentiles would sort every latency of the window on every failure; snapshots poll
      // the same computation on a timer. We need neither.
      rollingPercentilesEnabled: false,
      enableSnapshots: false,
    });
    // A fallback makes fire()'s promise resolve on failure too, so no catch() per attempt.
    this.opossum.fallback(ignore);
    this.opossum.on('open', () => this.transition('open'));
    this.opossum.on('halfOpen', () => this.transition('half-open'));
    this.opossum.on('close', () => this.transition('closed'));
  }

  get state(): CircuitState {
    return this.current;
  }

  /** Attempts currently admitted and not yet released. */
  get active(): number {
    return this.inFlight;
  }

  get rejected(): number {
    return this.rejections;
  }

  /**
   * Admits one attempt, or returns false (circuit open, half-open with its trial already in
   * flight, or `maxConcurrent` reached). Every true must be followed by exactly one `release`.
   */
  tryAcquire(): boolean {
    const o = this.opossum;
    if ((!o.closed && !o.pendingClose) || this.inFlight >= this.policy.maxConcurrent) {
      this.rejections++;
      this.hooks.onReject?.();
      return false;
    }
    this.inFlight++;
    // fire() runs `pending` synchronously, which registers this attempt's settle functions.
    void o.fire();
    return true;
  }

  /** Ends an admitted attempt; `success` false counts towards opening the circuit. */
  release(success: boolean): void {
    const resolve = this.resolvers.pop();
    const reject = this.rejecters.pop();
    if (resolve === undefined || reject === undefined) return;
    this.inFlight--;
    if (success) resolve();
    else reject(FAILED);
  }

  /** For /clusters. */
  toJSON(): { state: CircuitState; active: number; rejected: number } {
    return { state: this.current, active: this.inFlight, rejected: this.rejections };
  }

  /** Stops opossum's timers; pending attempts are abandoned. */
  close(): void {
    this.opossum.shutdown();
    this.resolvers.length = 0;
    this.rejecters.length = 0;
  }

  private readonly register = (resolve: () => void, reject: (err: Error) => void): void => {
    this.resolvers.push(resolve);
    this.rejecters.push(reject);
  };

  private readonly pending = (): Promise<void> => new Promise<void>(this.register);

  private transition(state: CircuitState): void {
    if (state === this.current) return;
    this.current = state;
    this.hooks.onStateChange?.(state);
  }
}
