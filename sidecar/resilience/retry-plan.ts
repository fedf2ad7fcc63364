/**
 * The retry policy of a route, compiled: one call per failed attempt answers "retry after
 * how long, or stop", combining the `on` conditions, the idempotency rule, the attempt
 * limit, the destination's retry budget, backoff, and the retry metrics.
 */
import type { RetryPolicy } from '../../common/config/schema.js';
import type { SidecarMetrics } from '../telemetry/metrics.js';
import { backoffDelay } from './backoff.js';
import type { RetryBudget } from './retry-budget.js';
import { compileRetryOn, retryReason, type AttemptOutcome, type RetryOn } from './retry-decision.js';

export const STOP = -1;

export class RetryPlan {
  private readonly on: RetryOn;

  constructor(
    readonly policy: RetryPolicy,
    private readonly destination: string,
    private readonly budget: RetryBudget,
    private readonly metrics: SidecarMetrics | undefined,
    private readonly random: () => number = Math.random,
  ) {
    this.on = compileRetryOn(policy.on);
  }

  /**
   * After failed attempt number `retriesSoFar` (0 after the first try): the backoff in ms
   * before the next attempt, or STOP. Consumes budget and counts the retry when it says go.
   */
  next(retriesSoFar: number, outcome: AttemptOutcome, status: number, grpcStatus: number, replayable: boolean, reachedUpstream: boolean): number {
    if (retriesSoFar >= this.policy.attempts) return STOP;
    const reason = retryReason(this.on, outcome, status, grpcStatus, replayable, reachedUpstream);
    if (reason === undefined) return STOP;
    if (!this.budget.tryAcquireRetry()) {
      this.metrics?.retryBudgetExhausted(this.destination);
      return STOP;
    }
    this.metrics?.retry(this.destination, reason);
    return backoffDelay(retriesSoFar, this.policy.backoff.base, this.policy.backoff.max, this.random);
  }
}
