/**
 * Outlier detection for one service (Envoy's consecutive-5xx detector): an endpoint that
 * fails `consecutiveErrors` attempts in a row (5xx, connect failures, resets) is ejected
 * from balancing for `baseEjectionTime` × the number of times it has been ejected (at most
 * 300 s, or `baseEjectionTime` if longer, like Envoy's max_ejection_time), and returns when
 * that time is up. The count decays by one for each `baseEjectionTime` an endpoint stays
 * back without being ejected, so one bad hour is not held against it forever. At most
 * `maxEjectionPercent` of the endpoints are ejected at once (rounded down, so the only
 * endpoint of a service is never ejected).
 *
 * Ejection is soft (balancers/balancer.ts): an ejected endpoint still gets a retry moving
 * away from the last endpoint that is not ejected (panic routing). One that answers such an
 * attempt well has shown it is back and returns at once, like an endpoint whose ejection
 * time is up; that also frees its place under `maxEjectionPercent` for the endpoint that is
 * failing now, which otherwise keeps every first try while it cannot be ejected.
 *
 * `isEjected` is what the balancer asks on every pick: a Map lookup, plus a clock read only
 * for endpoints that are ejected. An unref'd timer also returns endpoints on time and tells
 * `onChange` listeners, for balancers that rebuild their pickers without ejected endpoints.
 */
import type { OutlierPolicy } from '../../common/config/schema.js';

export interface OutlierHooks {
  onEject?(key: string, untilMs: number): void;
  /** An endpoint was ejected or returned. */
  onChange?(): void;
}

export interface OutlierEndpointState {
  readonly key: string;
  readonly consecutiveErrors: number;
  readonly ejections: number;
  /** Epoch ms when the current ejection ends; absent when not ejected. */
  readonly ejectedUntil?: number;
  /** While ejected: epoch ms when the ejection began, and why (the control plane's explain names both). */
  readonly ejectedSince?: number;
  readonly ejectionReason?: string;
}

interface Tracked {
  consecutive: number;
  ejections: number;
  /** When it last returned from ejection or had its count decayed (epoch ms). */
  calmSince: number;
  /** When its latest ejection began (epoch ms) and why; read only while it is ejected. */
  ejectedAt: number;
  ejectionReason: string;
}

/** Longest single ejection, unless baseEjectionTime alone is longer. */
export const MAX_EJECTION_MS = 300_000;

export class OutlierDetector {
  private readonly tracked = new Map<string, Tracked>();
  /** Ejected keys and when each returns. */
  private readonly ejected = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;

  constructor(
    private readonly policy: OutlierPolicy,
    private readonly hooks: OutlierHooks = {},
    private readonly now: () => number = Date.now,
  ) {}

  /** Replaces the endpoint set; state of endpoints that left is dropped. */
  setEndpoints(keys: Iterable<string>): void {
    const next = new Set(keys);
    for (const key of this.tracked.keys()) if (!next.has(key)) this.tracked.delete(key);
    let changed = false;
    for (const key of this.ejected.keys()) {
      if (!next.has(key)) {
        this.ejected.delete(key);
        changed = true;
      }
    }
    for (const key of next) if (!this.tracked.has(key)) this.tracked.set(key, { consecutive: 0, ejections: 0, calmSince: 0, ejectedAt: 0, ejectionReason: '' });
    if (changed) this.hooks.onChange?.();
  }

  /** A bound function, so it can be handed to a balancer as its ejection predicate. */
  readonly isEjected = (key: string): boolean => {
    if (this.ejected.size === 0) return false;
    const until = this.ejected.get(key);
    if (until === undefined) return false;
    if (this.now() < until) return true;
    this.restore(key);
    return false;
  };

  /** The ejection `key` is in (its end, epoch ms), or 0: what an attempt sent now hands back to record(). */
  ejection(key: string): number {
    return this.isEjected(key) ? this.ejected.get(key)! : 0;
  }

  /**
   * Reports an attempt's outcome on `key`; `failed` for 5xx, connect failures and resets.
   * `sentDuring`: the ejection (ejection()) the attempt was sent in, by panic routing; its
   * success returns the endpoint now if that ejection still holds. A late success of an
   * attempt sent before the ejection, or during an earlier one, says nothing of the
   * endpoint's state since, and does not.
   */
  record(key: string, failed: boolean, sentDuring = 0): void {
    const t = this.tracked.get(key);
    if (t === undefined) return;
    if (!failed) {
      t.consecutive = 0;
      if (sentDuring !== 0 && this.ejected.get(key) === sentDuring) this.restore(key);
      else if (t.ejections > 0) this.decay(key, t);
      return;
    }
    t.consecutive++;
    if (t.consecutive >= this.policy.consecutiveErrors && !this.ejected.has(key) && this.ejected.size < this.maxEjected()) {
      this.eject(key, t);
    }
  }

  /** How many endpoints may be ejected at once. */
  maxEjected(): number {
    // The epsilon keeps 3 × 33.333…% from rounding down to 0.
    return Math.floor((this.tracked.size * this.policy.maxEjectionPercent) / 100 + 1e-9);
  }

  get ejectedCount(): number {
    return this.ejected.size;
  }

  /** For /clusters. */
  state(): OutlierEndpointState[] {
    const now = this.now();
    const out: OutlierEndpointState[] = [];
    for (const [key, t] of this.tracked) {
      const until = this.ejected.get(key);
      const ejected = until !== undefined && until > now;
      out.push({ key, consecutiveErrors: t.consecutive, ejections: t.ejections, ...(ejected ? { ejectedUntil: until, ejectedSince: t.ejectedAt, ejectionReason: t.ejectionReason } : {}) });
    }
    return out;
  }

  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private decay(key: string, t: Tracked): void {
    if (this.ejected.has(key)) return; // a late success of a request sent before the ejection
    const now = this.now();
    if (now - t.calmSince >= this.policy.baseEjectionTime) {
      t.ejections--;
      t.calmSince = now;
    }
  }

  private eject(key: string, t: Tracked): void {
    t.ejections++;
    const base = this.policy.baseEjectionTime;
    t.ejectedAt = this.now();
    t.ejectionReason = `${t.consecutive} consecutive errors`;
    const until = t.ejectedAt + Math.min(base * t.ejections, Math.max(base, MAX_EJECTION_MS));
    this.ejected.set(key, until);
    this.schedule(until);
    this.hooks.onEject?.(key, until);
    this.hooks.onChange?.();
  }

  private restore(key: string): void {
    this.ejected.delete(key);
    const t = this.tracked.get(key);
    if (t) {
      t.consecutive = 0;
      t.calmSince = this.now();
    }
    this.hooks.onChange?.();
  }

  private schedule(at: number): void {
    if (at >= this.timerAt) return;
    clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(this.expire, Math.max(0, at - this.now()));
    this.timer.unref();
  }

  private readonly expire = (): void => {
    this.timer = undefined;
    this.timerAt = Infinity;
    const now = this.now();
    let next = Infinity;
    for (const [key, until] of this.ejected) {
      if (until <= now) this.restore(key);
      else if (until < next) next = until;
    }
    if (next !== Infinity) this.schedule(next);
  };
}
