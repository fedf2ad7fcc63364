/**
 * Failover (Consul's service-resolver `Failover`, Envoy's priority levels): the compiled form
 * of a service's `failover` lists, built once per snapshot. A subset with a list picks only
 * among its endpoints that are not ejected; when it has none (none registered or passing, or
 * every one ejected by outlier detection) the attempt loop (exchange.ts) tries the targets in
 * order, and only then the subset's ejected endpoints (panic routing, as without a list) or
 * `503 no-healthy-endpoints`. Targets are not followed further: a target's own list is not
 * applied to a request that failed over to it, so lists cannot loop.
 */
import type { ServicePolicy, Snapshot } from '../../common/config/schema.js';
import { ownEntry } from '../../common/config/own.js';
import { ALL_ENDPOINTS } from '../../common/routing/split.js';
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
  /** The target service's runtime in force (null once the snapshot no longer has it). */
  runtime(): ServiceRuntime | undefined;
}

/** A subset's failover: its targets in order, and the pick it falls back to when none has a healthy endpoint. */
export interface SubsetFailover {
  readonly targets: readonly FailoverTarget[];
  /** The subset's own picker, ejected endpoints included (panic routing). */
  readonly panic: Picker<UpstreamEndpoint>;
}

/** A service's failover lists by subset (`*` for every other), with defaults filled in. */
export type FailoverLists = ReadonlyMap<string, readonly FailoverTarget[]>;

/**
 * `service`'s failover lists from `snapshot`, or null for none. A target the snapshot cannot
 * serve is left out: a service it no longer lists (a pushed snapshot may lose one with its last
 * instance; a written one is refused for it), or one of another protocol.
 */
export function compileFailover(service: string, policy: ServicePolicy, snapshot: Pick<Snapshot, 'services'>, runtimeOf: (service: string) => ServiceRuntime | undefined): FailoverLists | null {
  if (policy.failover === undefined) return null;
  const lists = new Map<string, FailoverTarget[]>();
  for (const [key, targets] of Object.entries(policy.failover)) {
    const kept: FailoverTarget[] = [];
    for (const t of targets) {
      const name = t.service ?? service;
      const subset = t.subset ?? ALL_ENDPOINTS;
      const other = name === service ? policy : ownEntry(snapshot.services, name);
      if (other === undefined || other.protocol !== policy.protocol) continue;
      const label = `${name}/${subset}`;
      if (kept.some((k) => k.label === label)) continue;
      kept.push({ service: name, subset, label, runtime: () => runtimeOf(name) });
    }
    if (kept.length > 0) lists.set(key, kept);
  }
  return lists.size > 0 ? lists : null;
}

/** The list of `service`'s `subset`: its own, else `*`'s, without the subset itself (`*` may name it); null for none. */
export function failoverOf(lists: FailoverLists | null, service: string, subset: string): readonly FailoverTarget[] | null {
  const list = lists === null ? undefined : (lists.get(subset) ?? lists.get(ALL_ENDPOINTS));
  const targets = list?.filter((t) => t.service !== service || t.subset !== subset) ?? [];
  return targets.length > 0 ? targets : null;
}

/** Per service, the subsets other services' failover lists send to: its runtime builds them from the start, as it does its own. */
export function failoverSubsetsByService(snapshot: Pick<Snapshot, 'services'>): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const [service, policy] of Object.entries(snapshot.services)) {
    for (const targets of Object.values(policy.failover ?? {})) {
      for (const t of targets) {
        if (t.service === undefined || t.service === service) continue;
        let subsets = out.get(t.service);
        if (subsets === undefined) out.set(t.service, (subsets = new Set()));
        subsets.add(t.subset ?? ALL_ENDPOINTS);
      }
    }
  }
  return out;
}

/**
 * `picker` without panic routing: undefined where it would pick an ejected endpoint, so the
 * request fails over rather than going to one. A retry's `avoid` is still picked when it is
 * the only endpoint and not ejected, as without failover.
 */
export function healthyOnly<E extends UpstreamEndpoint>(picker: Picker<E>, outlier: Ejections): Picker<E> {
  return {
    pick(avoid, hash) {
      const e = picker.pick(avoid, hash);
      return e === undefined || (outlier.ejectedCount > 0 && outlier.isEjected(e.key)) ? undefined : e;
    },
  };
}

/** What failover reads of a service's outlier detection. */
export type Ejections = Pick<OutlierDetector, 'ejectedCount' | 'isEjected'>;
