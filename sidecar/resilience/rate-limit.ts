/**
 * The inbound rate limit of this sidecar's service (its policy's `rateLimit`): a token bucket
 * of `burst` tokens refilled continuously at `requestsPerSecond`, as Envoy's local_ratelimit
 * and Consul's instance-level limits. Each request admitted takes a token. The bucket is
 * refilled when it is read, not by a timer, so a check is a clock read and a few additions.
 */
import type { RateLimitPolicy } from '../../common/config/schema.js';

export class TokenBucket {
  private tokens: number;
  private last: number;
  private readonly perMs: number;

  constructor(
    readonly policy: RateLimitPolicy,
    private readonly now: () => number = () => performance.now(),
  ) {
    // A new bucket (a first snapshot, or a changed limit) starts full.
    this.tokens = policy.burst;
    this.last = now();
    this.perMs = policy.requestsPerSecond / 1000;
  }

  /** Takes a token: 0 when there was one, else the milliseconds until there will be (nothing taken). */
  take(): number {
    const now = this.now();
    this.tokens = Math.min(this.policy.burst, this.tokens + (now - this.last) * this.perMs);
    this.last = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return (1 - this.tokens) / this.perMs;
  }
}
