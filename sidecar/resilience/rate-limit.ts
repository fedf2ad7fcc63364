/**
 * The inbound rate limit of this sidecar's service (its policy's `rateLimit`): token buckets of
 * `burst` tokens refilled continuously at `requestsPerSecond`, as Envoy's local_ratelimit and
 * Consul's instance-level limits: one for all callers (or, with `routes`, one for the requests
 * a route matches) and, with `perSource` or `sources`, one per caller identity, as Linkerd's.
 * A bucket is refilled when it is read, not by a timer, so a check is a clock read and a few
 * additions.
 */
import { ownEntry } from '../../common/config/own.js';
import type { RateLimitRefusal } from '../../common/errors.js';
import { compileMatch, type CompiledMatch, type HeaderMap } from '../../common/routing/match.js';
import type { BucketLimit, RateLimitPolicy } from '../../common/config/schema.js';

export class TokenBucket {
  private tokens: number;
  private last: number;
  private readonly perMs: number;

  constructor(
    readonly limit: BucketLimit,
    private readonly now: () => number = () => performance.now(),
  ) {
    // A new bucket (a first snapshot, a changed limit, a caller's first request) starts full.
    this.tokens = limit.burst;
    this.last = now();
    this.perMs = limit.requestsPerSecond / 1000;
  }

  /** 0 when a token is there, else the milliseconds until one will be. Takes nothing. */
  wait(): number {
    const now = this.now();
    this.tokens = Math.min(this.limit.burst, this.tokens + (now - this.last) * this.perMs);
    this.last = now;
    return this.tokens >= 1 ? 0 : (1 - this.tokens) / this.perMs;
  }

  /** Takes a token: 0 when there was one, else the milliseconds until there will be (nothing taken). */
  take(): number {
    const wait = this.wait();
    if (wait === 0) this.tokens -= 1;
    return wait;
  }
}

export class InboundRateLimit {
  private readonly total: TokenBucket | null;
  /** `routes`, compiled; null without. */
  private readonly routes: readonly { readonly match: CompiledMatch; readonly bucket: TokenBucket }[] | null;
  /**
   * Per caller identity, made on its first request; null when the policy has no per-caller
   * limit. Keyed by verified identities (or `unknown`), so bounded by the mesh's services.
   */
  private readonly own: Map<string, TokenBucket | null> | null;
  /** Whether some route's match reads request headers: a request's header map is built only then, as for route tables. */
  readonly usesHeaders: boolean;

  constructor(
    readonly policy: RateLimitPolicy,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.total = policy.requestsPerSecond === undefined ? null : new TokenBucket({ requestsPerSecond: policy.requestsPerSecond, burst: policy.burst }, now);
    this.own = policy.perSource === undefined && policy.sources === undefined ? null : new Map();
    this.routes = policy.routes?.map(({ match, ...limit }) => ({ match: compileMatch(match), bucket: new TokenBucket(limit, now) })) ?? null;
    this.usesHeaders = this.routes?.some((r) => r.match.usesHeaders) ?? false;
  }

  /**
   * null when `source`'s request is admitted, a token taken from each bucket that applies; else
   * the refusal, nothing taken, so a caller over its own limit does not use up the total's tokens.
   */
  admit(source: string, method: string, path: string, headers: HeaderMap | undefined, authority: string): RateLimitRefusal | null {
    const own = this.bucketOf(source);
    if (own !== null) {
      const waitMs = own.wait();
      if (waitMs > 0) return { limit: own.limit, source, route: undefined, waitMs };
    }
    let shared = this.total;
    let route: number | undefined;
    if (this.routes !== null) {
      const index = this.routes.findIndex((r) => r.match.matches(method, path, headers, authority));
      if (index >= 0) {
        shared = this.routes[index]!.bucket;
        route = index;
      }
    }
    if (shared !== null) {
      const waitMs = shared.take();
      if (waitMs > 0) return { limit: shared.limit, source: undefined, route, waitMs };
    }
    own?.take();
    return null;
  }

  private bucketOf(source: string): TokenBucket | null {
    if (this.own === null) return null;
    let bucket = this.own.get(source);
    if (bucket === undefined) {
      const limit = ownEntry(this.policy.sources, source) ?? this.policy.perSource;
      bucket = limit === undefined ? null : new TokenBucket(limit, this.now);
      this.own.set(source, bucket);
    }
    return bucket;
  }
}
