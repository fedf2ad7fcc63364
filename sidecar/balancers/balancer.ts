/**
 * Load balancing, grpc-js style: a balancer turns an endpoint set into an immutable picker;
 * when the set changes a new picker is built, so the request path is one `pick()` call.
 * Ejected endpoints (outlier detection) are skipped through a predicate; when every
 * endpoint is ejected the picker ignores ejection (Envoy's panic mode) rather than fail.
 */
export interface BalancedEndpoint {
  /** `address:port`, the key outlier detection tracks. */
  readonly key: string;
  /** Requests in flight on this endpoint, kept by the attempt loop (least-request reads it). */
  readonly active: number;
}

export type EjectedPredicate = (key: string) => boolean;

export interface Picker<E extends BalancedEndpoint> {
  /**
   * An endpoint for the next attempt; undefined only when the set is empty. A retry passes the
   * endpoint its last attempt failed on as `avoid`, which is then chosen only when no other
   * endpoint is healthy (Envoy's previous-hosts retry predicate): a dead endpoint fails fast,
   * keeps nothing in flight, and would otherwise win least-request's comparison every time.
   */
  pick(avoid?: E): E | undefined;
}

export type BalancerFactory = <E extends BalancedEndpoint>(endpoints: readonly E[], isEjected: EjectedPredicate, random?: () => number) => Picker<E>;

export const notEjected: EjectedPredicate = () => false;

/** The picker for an empty set. */
export const EMPTY_PICKER: Picker<never> = { pick: () => undefined };

/** A uniformly random endpoint that is not ejected (a few tries, then any). */
export function randomHealthy<E extends BalancedEndpoint>(endpoints: readonly E[], isEjected: EjectedPredicate, random: () => number): E {
  const n = endpoints.length;
  for (let tries = 0; tries < 4; tries++) {
    const e = endpoints[Math.floor(random() * n)]!;
    if (!isEjected(e.key)) return e;
  }
  const start = Math.floor(random() * n);
  for (let i = 0; i < n; i++) {
    const e = endpoints[(start + i) % n]!;
    if (!isEjected(e.key)) return e;
  }
  return endpoints[start]!;
}

/** A random healthy endpoint other than `avoid`; `avoid` itself when it is the only healthy one. */
export function randomHealthyExcept<E extends BalancedEndpoint>(endpoints: readonly E[], isEjected: EjectedPredicate, random: () => number, avoid: E): E {
  const e = randomHealthy(endpoints, (key) => key === avoid.key || isEjected(key), random);
  return e !== avoid && !isEjected(e.key) ? e : isEjected(avoid.key) ? e : avoid;
}
