/**
 * The circuit breaker of one service+subset, on opossum (SPEC §1 names it): opossum owns the
 * rolling window, the error-rate and volume thresholds, and the open → half-open → closed
 * state machine with its reset timer. Timeouts stay ours (the attempt loop's), so opossum's
 * is off.
 *
 * The proxy's attempts are callback-driven, while opossum is driven through `fire()`. So an
 * attempt is fired when it is released with its verdict, as an action already settled to
 * it; opossum then counts the outcome and trips or closes the circuit exactly as it would
 * for a wrapped async call. Firing at the end rather than at admission is what lets an
 * attempt count for nothing: opossum's error rate is failures over fires, so an attempt
 * fired at admission would count as a success whatever happened to it. A `neutral` attempt
 * (its caller went away, or broke its own request body) is never fired: it says nothing
 * about the endpoint, and must neither dilute the failures in the window nor close a
 * half-open circuit.
 *
 * `tryAcquire()` reads the state and never fires, so rejected requests cost nothing but a
 * flag read. The half-open circuit's one trial is ours to track for the same reason: opossum
 * marks it taken only when it is fired, and a neutral trial must leave room for the next.
 * An outcome released while half-open decides the circuit, the trial's or that of an
 * attempt admitted before the circuit opened. A trial that answers well is counted when its
 * head comes (`trialAnswered`), not at its end: its body may stream for hours (server-sent
 * events, a long poll under `timeout: 0s`), and every other request would be refused meanwhile.
 *
 * For the same reason a trial holds its place for at most `resetTimeout` (`startTrial`): one
 * still undecided then gives its place to the next request, which becomes the next trial, and
 * goes on as an ordinary attempt, its outcome counted when it ends (a slow endpoint's late
 * success still closes the circuit, a failure reopens it). Under `timeout: 0s` a trial that
 * never answers would otherwise hold the half-open circuit, refusing every other request, for
 * as long as its endpoint kept it waiting; and judging it failed at the bound instead would
 * keep the circuit of an endpoint slower than `resetTimeout` open for good (every trial
 * "failed", though each answered 200). The bound is the breaker's own interval: a trial may
 * keep the service refused no longer than the open circuit did.
 *
 * A closed circuit is judged on what happened since it closed, as Hystrix and resilience4j
 * do: opossum keeps the failures that opened it in its rolling window, where a single failure
 * after the close would reopen it, and has no way to clear them. So each close swaps in a
 * fresh opossum instance (the state reported through the hooks stays one).
 *
 * `maxConcurrent` is our own counter rather than opossum's `capacity`: opossum counts a full
 * semaphore as a failure, and an overloaded-but-healthy upstream must not open the circuit.
 *
 * A reload that changes the policy changes it here (`reconfigure`), rather than replacing the
 * breaker: its state stays, so an outage's open circuit stays open (its reset timer starts again
 * with the new `resetTimeout`), and so do its attempts in flight, which count against the new
 * `maxConcurrent` until they end, and a half-open circuit's trial still out.
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

/** tryAcquire's answer: refused, or admitted as an ordinary attempt or as the half-open circuit's trial (`trialAnswered` turns a trial into `Answered`, its bound into `Attempt`). */
export const enum Admission {
  Refused = 0,
  Attempt = 1,
  Trial = 2,
  /** A trial whose success was counted when it answered: its release only frees its place. */
  Answered = 3,
}

/** The attempt a half-open circuit let through, as `startTrial` watches it (the exchange's AttemptHandler). */
export interface TrialAttempt {
  /** The breaker sets it to `Attempt` when the trial's bound passes first. */
  admission: Admission;
}

/** What an attempt says about its endpoint: `neutral` when it says nothing (the caller's doing). */
export type Verdict = 'success' | 'failure' | 'neutral';

const FAILED = Object.freeze(Object.assign(new Error('attempt failed'), { stack: '' }));
const SUCCEEDED = Promise.resolve();
const ignore = (): void => {};
/** The action fired for a released attempt: settled already to its outcome. */
const outcome = (success: boolean): Promise<void> => (success ? SUCCEEDED : Promise.reject(FAILED));

function onTrialBound(breaker: CircuitBreaker): void {
  breaker.trialOverdue();
}

export class CircuitBreaker {
  private opossum: Opossum<[boolean], void>;
  private inFlight = 0;
  /** The half-open trial is admitted and not yet released, answered or past its bound. */
  private trialOut = false;
  /** The trial in flight as startTrial was given it, and the timer of its bound. */
  private trial: TrialAttempt | null = null;
  private trialTimer: NodeJS.Timeout | undefined = undefined;
  private current: CircuitState = 'closed';
  private rejections = 0;

  constructor(
    private policy: CircuitBreakerPolicy,
    private readonly hooks: BreakerHooks = {},
  ) {
    this.opossum = this.fresh();
  }

  /** Takes a reload's new policy: the window starts empty under its thresholds, the rest stays (see above). */
  reconfigure(policy: CircuitBreakerPolicy): void {
    this.policy = policy;
    const old = this.opossum;
    this.opossum = this.fresh(this.current);
    old.shutdown();
  }

  /** An opossum instance with an empty window, in `state` (closed but after a reconfigure); a close replaces it with the next. */
  private fresh(state: CircuitState = 'closed'): Opossum<[boolean], void> {
    const policy = this.policy;
    const window = policy.rollingWindow;
    const o = new Opossum(outcome, {
      // Open starts the reset timer; half-open waits for its trial.
      ...(state === 'closed' ? {} : { state: { closed: false, halfOpen: state === 'half-open' } }),
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
    o.fallback(ignore);
    o.on('open', () => this.transition('open'));
    o.on('halfOpen', () => this.transition('half-open'));
    o.on('close', () => {
      // Emitted while opossum counts the half-open circuit's one fire, a success: nothing else
      // is pending in this instance, so it can go.
      this.opossum = this.fresh();
      o.shutdown();
      this.transition('closed');
    });
    return o;
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
   * Admits one attempt, or refuses it (circuit open, half-open with its trial already in
   * flight, or `maxConcurrent` reached). Every admission must be followed by exactly one
   * `release` of it.
   */
  tryAcquire(): Admission {
    const o = this.opossum;
    const closed = o.closed;
    if ((closed || (o.pendingClose && !this.trialOut)) && this.inFlight < this.policy.maxConcurrent) {
      this.inFlight++;
      if (closed) return Admission.Attempt;
      this.trialOut = true;
      return Admission.Trial;
    }
    this.rejections++;
    this.hooks.onReject?.();
    return Admission.Refused;
  }

  /** Ends an admitted attempt: a failure counts towards opening the circuit, a neutral one counts for nothing. */
  release(admission: Admission, verdict: Verdict): void {
    if (admission === Admission.Refused || this.inFlight === 0) return;
    this.inFlight--;
    if (admission === Admission.Trial) this.endTrial();
    if (verdict !== 'neutral' && admission !== Admission.Answered) this.count(verdict === 'success');
  }

  /**
   * Bounds the trial `tryAcquire` just admitted, which must be `attempt`: if it is neither
   * answered nor released `resetTimeout` from now, trialOverdue gives its place up.
   */
  startTrial(attempt: TrialAttempt): void {
    this.trial = attempt;
    // Once per half-open period, not per request; unref'd, as opossum's reset timer is.
    this.trialTimer = setTimeout(onTrialBound, this.policy.resetTimeout, this).unref();
  }

  /**
   * The half-open circuit's trial is answering well (its head came, not a failure): counts its
   * success now, which closes the circuit, rather than when its body ends. Returns the admission
   * to release it with, which then only frees its place (its end is not counted again).
   */
  trialAnswered(): Admission {
    this.endTrial();
    this.count(true);
    return Admission.Answered;
  }

  /**
   * The trial's bound passed with the trial still out: its place goes to the next request, and
   * it goes on as an ordinary attempt, its outcome counted when it ends.
   */
  trialOverdue(): void {
    this.trialTimer = undefined;
    const trial = this.trial;
    if (trial === null) return;
    this.endTrial();
    trial.admission = Admission.Attempt;
  }

  /** The trial's place is free for the next one, and its bound off. */
  private endTrial(): void {
    this.trialOut = false;
    this.trial = null;
    if (this.trialTimer !== undefined) {
      clearTimeout(this.trialTimer);
      this.trialTimer = undefined;
    }
  }

  private count(success: boolean): void {
    const o = this.opossum;
    // An attempt admitted before the circuit opened and released while it is open (or half-open
    // with its trial decided) is not counted: opossum would count it as a fire and refuse it.
    if (o.isShutdown || (!o.closed && !o.pendingClose)) return;
    void o.fire(success);
  }

  /** For /clusters. */
  toJSON(): { state: CircuitState; active: number; rejected: number } {
    return { state: this.current, active: this.inFlight, rejected: this.rejections };
  }

  /** Stops opossum's timers and the trial's bound; attempts released after this are not counted. */
  close(): void {
    this.endTrial();
    this.opossum.shutdown();
  }

  private transition(state: CircuitState): void {
    if (state === this.current) return;
    this.current = state;
    this.hooks.onStateChange?.(state);
  }
}
