/**
 * The rule both Consul readers (the sidecar's endpoint source, the control plane's catalog)
 * apply after an outage: a restarted agent answers before the instances on it have
 * registered again (and before their checks pass), so for a while an answer that leaves
 * nothing of what was known is not news, and the last known set is kept instead. Errors
 * alone need no rule: a failed query keeps the last answer anyway. An answer kept is applied
 * when the hold ends (`afterHold`) unless a later one came first: a blocking query answers
 * again only when something changes, so a service that stays gone would otherwise keep its
 * last known set for good.
 */

/** How long after Consul answers again an emptied set is taken for a registry still refilling. */
export const RECOVERY_HOLD_MS = 30_000;

export class RecoveryHold {
  private until = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly holdMs: number = RECOVERY_HOLD_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /** Consul answered again after failing: the hold period starts now. */
  recovered(): void {
    this.until = this.now() + this.holdMs;
  }

  /** Whether a set of `before` items that an answer would leave with `after` is kept as it is. */
  keeps(before: number, after: number): boolean {
    return after === 0 && before > 0 && this.now() < this.until;
  }

  /**
   * An answer that changes the set in use (`before` passing, `after` passing): applied now, or,
   * when the hold keeps the last known set, when the hold ends (Consul answers again only on a
   * change) unless another answer comes first. Either way it replaces one waiting for the
   * hold's end. True when kept.
   */
  offer(before: number, after: number, apply: () => void): boolean {
    if (!this.keeps(before, after)) {
      this.cancel();
      apply();
      return false;
    }
    this.afterHold(apply);
    return true;
  }

  /**
   * Runs `apply` when the hold period ends, in place of one scheduled before; by then the
   * hold is over (`keeps` is false), so `apply` can take the answer that was kept.
   */
  afterHold(apply: () => void): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.until = 0;
      apply();
    }, Math.max(0, this.until - this.now()));
    this.timer.unref();
  }

  /** Drops what `afterHold` scheduled: a later answer was applied, or the watch ended. */
  cancel(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
