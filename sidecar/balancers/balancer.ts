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
  /** An endpoint for the next attempt; undefined only when the set is empty. */
  pick(): E | undefined;
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
