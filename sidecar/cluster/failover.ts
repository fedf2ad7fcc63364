/**
 * Failover (Consul's service-resolver `Failover`, Envoy's priority levels) as the request path
 * reads it, built once per snapshot or endpoint change. A subset with targets
 * (common/routing/failover.ts) picks only among its endpoints that are not ejected; when it has
 * none (none registered or passing, or every one ejected by outlier detection) the attempt loop
 * (exchange.ts) tries the targets in order, and only then the subset's ejected endpoints (panic
 * routing, as without a list) or a target's, else `503 no-healthy-endpoints`. Targets are not
 * followed further: a target's own list is not applied to a request that failed over to it.
 */
import type { Snapshot } from '../../common/config/schema.js';
import { failoverSteps } from '../../common/routing/failover.js';
import type { Picker } from '../balancers/balancer.js';
import type { OutlierDetector } from '../resilience/outlier.js';
import type { ServiceRuntime } from './service-runtime.js';
import type { UpstreamEndpoint } from './upstream-endpoint.js';

export interface FailoverTarget {
  readonly service: string;
  /** `*` for the service's catch-all over all its endpoints. */
  readonly subset: string;
  /** `service/subset`, the `target` label of skein_failover_total. */
  readonly label: string;
  /** The target service's runtime in force (undefined once the snapshot no longer has it). */
  runtime(): ServiceRuntime | undefined;
}

/** A subset's failover: its targets in order, and the pick it falls back to when none has a healthy endpoint. */
export interface SubsetFailover {
  readonly targets: readonly FailoverTarget[];
  /** The subset's own picker, ejected endpoints included (panic routing). */
  readonly panic: Picker<UpstreamEndpoint>;
}

/** The targets of `service`'s `subset` in `snapshot`, each resolved through `runtimeOf` when a request fails over; null for none. */
export function compileFailover(snapshot: Pick<Snapshot, 'services'>, service: string, subset: string, runtimeOf: (service: string) => ServiceRuntime | undefined): readonly FailoverTarget[] | null {
  const steps = failoverSteps(snapshot.services, service, subset);
  if (steps.length === 0) return null;
  return steps.map((s) => ({ ...s, label: `${s.service}/${s.subset}`, runtime: () => runtimeOf(s.service) }));
}

/** What failover reads of a service's outlier detection. */
export type Ejections = Pick<OutlierDetector, 'isEjected'>;

/**
 * `picker` without panic routing: undefined where it would pick an ejected endpoint, so the
 * request fails over rather than going to one. A retry's `avoid` is still picked when it is
 * the only endpoint and not ejected, as without failover.
 */
export function healthyOnly<E extends UpstreamEndpoint>(picker: Picker<E>, outlier: Ejections): Picker<E> {
  return {
    pick(avoid, hash) {
      const e = picker.pick(avoid, hash);
      return e === undefined || outlier.isEjected(e.key) ? undefined : e;
    },
  };
}
