/**
 * Load balancing, grpc-js style: a balancer turns an endpoint set into an immutable picker;
 * when the set changes a new picker is built, so the request path is one `pick()` call.
 * Ejected endpoints (outlier detection) are skipped through a predicate, softly: every
 * picker ranks the endpoints the same way and picks among the best rank present:
 *
 *   1. neither ejected nor `avoid` (the endpoint a retry's last attempt failed on);
 *   2. ejected, but not `avoid`: panic routing, as Envoy does when too few hosts are healthy;
 *   3. `avoid` itself, when it is the only endpoint.
 *
 * So an ejected endpoint gets no traffic while another endpoint is not ejected, but a retry
 * moving away from the last endpoint that is not ejected (it just refused a connection, reset,
 * timed out or failed) goes to an ejected one rather than back to it: the ejected endpoint
 * failed a while ago and may be fine now, the other one failed this very request.
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
   * endpoint its last attempt failed on as `avoid`, which is then chosen only when it is the
   * only endpoint, ejected ones included (Envoy's previous-hosts retry predicate): a dead
   * endpoint fails fast, keeps nothing in flight, and would otherwise win least-request's
   * comparison every time. `hash` is the request's hash key (hash-key.ts), for `ring-hash`;
   * the other pickers do not read it.
   */
  pick(avoid?: E, hash?: number): E | undefined;
}

export type BalancerFactory = <E extends BalancedEndpoint>(endpoints: readonly E[], isEjected: EjectedPredicate, random?: () => number) => Picker<E>;

export const notEjected: EjectedPredicate = () => false;

/** The picker for an empty set. */
export const EMPTY_PICKER: Picker<never> = { pick: () => undefined };

/** An endpoint's rank for a pick (see above): 0 is best. */
export function rank<E extends BalancedEndpoint>(e: E, isEjected: EjectedPredicate, avoid: E | undefined): number {
  return e === avoid ? 2 : isEjected(e.key) ? 1 : 0;
}

/**
 * A random endpoint of the best rank present: a few uniform draws for one neither ejected
 * nor `avoid`, then a scan from a random start; failing both, an ejected endpoint other than
 * `avoid` (panic: the first drawn, else the scan's first), then `avoid`. No allocation: this
 * runs on every request.
 */
export function randomByRank<E extends BalancedEndpoint>(endpoints: readonly E[], isEjected: EjectedPredicate, random: () => number, avoid: E | undefined): E {
  const n = endpoints.length;
  // An ejected endpoint met in the uniform draws is the panic pick: the scan's first one would
  // favour whichever sits after a run of endpoints that are not ejected.
  let panic: E | undefined;
  for (let tries = 0; tries < 4; tries++) {
    const e = endpoints[Math.floor(random() * n)]!;
    if (e === avoid) continue;
    if (!isEjected(e.key)) return e;
    panic ??= e;
  }
  const start = Math.floor(random() * n);
  for (let i = 0; i < n; i++) {
    const e = endpoints[(start + i) % n]!;
    if (e === avoid) continue;
    if (!isEjected(e.key)) return e;
    panic ??= e;
  }
  return panic ?? avoid ?? endpoints[start]!;
}
