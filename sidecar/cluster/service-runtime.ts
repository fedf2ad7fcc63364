/**
 * The compiled, immutable form of one destination service that the request path reads:
 * its route table, and per rule the stages that are on (fault, mirror, retry, timeout, request
 * and response changes; `null` when off, fastify style), and per subset a picker over its
 * endpoints with its circuit breaker and metrics handle. A config or endpoint change builds a
 * new one.
 */
import type { RetryTries, RouteRule, ServicePolicy } from '../../common/config/schema.js';
import { compileRoutes, selectEndpoints, subsetSelector, type RouteTable, type WeightedSplit } from '../../common/routing/index.js';
import { BALANCERS, type Picker } from '../balancers/index.js';
import { compileHashKey, type HashKeyOf } from '../balancers/hash-key.js';
import { Admission, type CircuitBreaker } from '../resilience/breaker.js';
import type { OutlierDetector } from '../resilience/outlier.js';
import { compileRetryOn, type RetryOn } from '../resilience/retry-decision.js';
import type { RetryBudget } from '../resilience/retry-budget.js';
import { compileFault, type FaultStage } from '../stages/fault.js';
import { compileMirror, dispatchCopy, type MirrorInFlight, type MirrorStage } from '../stages/mirror.js';
import { compileHeaderEdit, compileRequestChanges, type HeaderEdit, type RequestChanges } from '../stages/route-changes.js';
import type { EdgeMetrics } from '../telemetry/metrics.js';
import { healthyOnly, type FailoverTarget, type SubsetFailover } from './failover.js';
import type { UpstreamEndpoint } from './upstream-endpoint.js';

export interface SubsetRuntime {
  readonly service: string;
  readonly name: string;
  readonly endpoints: readonly UpstreamEndpoint[];
  readonly picker: Picker<UpstreamEndpoint>;
  /** Where its requests go when it has no healthy endpoint; null for nowhere (`picker` then panics to ejected ones). */
  readonly failover: SubsetFailover | null;
  /** null where no breaker applies (the inbound hop to the local app). */
  readonly breaker: CircuitBreaker | null;
  readonly edge: EdgeMetrics;
  /**
   * The subset of the same name in the runtime that replaced this one (a reload or an endpoint
   * change), null while this one is current or when none replaced it: a retry of a request
   * begun before the change follows it, so it never goes to an endpoint that was removed.
   */
  successor: SubsetRuntime | null;
}

/** The newest subset `subset` was replaced by (itself when current). */
export function latestSubset(subset: SubsetRuntime): SubsetRuntime {
  let s = subset;
  while (s.successor !== null) s = s.successor;
  return s;
}

/**
 * A place in `subset`'s circuit breaker for one try to it, a request's or an upgrade's (any
 * try, where it has none); `Refused`, answered `circuit-open` with refusalText, when the circuit
 * is open or full.
 */
export function admitTry(subset: SubsetRuntime): Admission {
  return subset.breaker === null ? Admission.Attempt : subset.breaker.tryAcquire();
}

/**
 * An endpoint of `subset` for what does not fail over (an upgrade, a mirror copy), ejected ones
 * included (panic routing) as without a failover list; undefined when it has none.
 */
export function pickWithoutFailover(subset: SubsetRuntime, hash: number | undefined): UpstreamEndpoint | undefined {
  return (subset.failover?.panic ?? subset.picker).pick(undefined, hash);
}

export function refusalText(subset: SubsetRuntime): string {
  return `circuit open for ${subset.service}/${subset.name}`;
}

export interface RetryRuntime {
  /** Extra attempts after the first. */
  readonly attempts: number;
  readonly perTryTimeoutMs: number;
  readonly on: RetryOn;
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
}

export interface RouteRuntime {
  readonly index: number;
  readonly name: string;
  readonly split: WeightedSplit;
  /** Parallel to `split.subsets`. */
  readonly subsets: readonly SubsetRuntime[];
  /** Whole request, retries included; 0 for none. */
  readonly timeoutMs: number;
  readonly retry: RetryRuntime | null;
  readonly retryNonIdempotent: boolean;
  readonly fault: FaultStage | null;
  readonly mirror: MirrorStage | null;
  /** The rule's rewrite and request header changes, made once after routing. */
  readonly requestChanges: RequestChanges | null;
  /** The rule's changes to the upstream's answer head. */
  readonly responseHeaders: HeaderEdit | null;
}

export interface ServiceRuntime {
  readonly name: string;
  readonly policy: ServicePolicy;
  readonly table: RouteTable;
  readonly routes: readonly RouteRuntime[];
  readonly subsets: ReadonlyMap<string, SubsetRuntime>;
  readonly endpoints: readonly UpstreamEndpoint[];
  readonly outlier: OutlierDetector;
  readonly budget: RetryBudget;
  /** The request's hash key for `lb: ring-hash`; null for the other balancers, which read none. */
  readonly hashKey: HashKeyOf | null;
  /**
   * True while the destination's discovery waits for its first request (Mesh.service starts
   * it then and clears this): the one field that changes after the build, so the request path
   * pays a field test for the deferred watch, not a lookup.
   */
  awaitingUse: boolean;
}

/** Long-lived per-service state the runtime is built over (it survives rebuilds). */
export interface ServiceParts {
  readonly name: string;
  readonly policy: ServicePolicy;
  readonly rules: readonly RouteRule[] | undefined;
  readonly endpoints: readonly UpstreamEndpoint[];
  readonly outlier: OutlierDetector;
  readonly budget: RetryBudget;
  readonly awaitingUse: boolean;
  /** The failover targets of one of its subsets (failover.ts), null for none. */
  failover(subset: string): readonly FailoverTarget[] | null;
  /** Its subsets failover lists send to, built from the start as the rules' are. */
  readonly failoverSubsets: Iterable<string>;
  breaker(subset: string): CircuitBreaker;
  edge(subset: string): EdgeMetrics;
  /** The copies in flight of rule `rule`'s mirror to `subset`, counted across rebuilds. */
  mirrorInFlight(rule: string, subset: string): MirrorInFlight;
}

/** Bounds a mirror copy when its route has no timeout (0, from the rule or the service). */
const MIRROR_TIMEOUT_MS = 10_000;

function compileRetry(policy: RetryTries): RetryRuntime | null {
  if (policy.attempts === 0) return null;
  return {
    attempts: policy.attempts,
    perTryTimeoutMs: policy.perTryTimeout,
    on: compileRetryOn(policy.on),
    backoffBaseMs: policy.backoff.base,
    backoffMaxMs: policy.backoff.max,
  };
}

export function buildServiceRuntime(parts: ServiceParts, random: () => number = Math.random): ServiceRuntime {
  const { policy } = parts;
  const table = compileRoutes(parts.rules);
  const isEjected = (key: string): boolean => parts.outlier.isEjected(key);
  const balancer = BALANCERS[policy.lb];
  const subsets = new Map<string, SubsetRuntime>();
  const subset = (name: string): SubsetRuntime => {
    let s = subsets.get(name);
    if (s === undefined) {
      const endpoints = selectEndpoints(subsetSelector(policy, name), parts.endpoints);
      const picker = balancer(endpoints, isEjected, random);
      const targets = parts.failover(name);
      const failover = targets === null ? null : { targets, panic: picker };
      s = { service: parts.name, name, endpoints, picker: failover === null ? picker : healthyOnly(picker, parts.outlier), failover, breaker: parts.breaker(name), edge: parts.edge(name), successor: null };
      subsets.set(name, s);
    }
    return s;
  };
  const routes = table.rules.map((compiled): RouteRuntime => {
    const rule = compiled.rule;
    const timeoutMs = rule.timeout ?? policy.timeout;
    return {
      index: compiled.index,
      name: compiled.name,
      split: compiled.split,
      subsets: compiled.split.subsets.map(subset),
      timeoutMs,
      retry: compileRetry(rule.retries ?? policy.retries),
      retryNonIdempotent: rule.retryNonIdempotent,
      fault: compileFault(rule.fault, random),
      mirror: compileMirror(rule.mirror, (name, request) => {
        const endpoint = pickWithoutFailover(subset(name), request.hash);
        if (endpoint === undefined) return Promise.reject(new Error(`no endpoint in mirror subset ${name}`));
        return dispatchCopy(endpoint.pool, request, timeoutMs || MIRROR_TIMEOUT_MS);
      }, (name) => parts.mirrorInFlight(compiled.name, name), { random }),
      requestChanges: compileRequestChanges(rule),
      responseHeaders: compileHeaderEdit(rule.responseHeaders),
    };
  });
  // Every subset the rules or the policy name is known from the start, a mirror's too, so
  // /clusters and the gauges show it before its first copy and a reload does not drop it.
  for (const compiled of table.rules) if (compiled.rule.mirror !== undefined) subset(compiled.rule.mirror.subset);
  for (const name of Object.keys(policy.subsets)) subset(name);
  for (const name of parts.failoverSubsets) subset(name);
  return { name: parts.name, policy, table, routes, subsets, endpoints: parts.endpoints, outlier: parts.outlier, budget: parts.budget, hashKey: compileHashKey(policy.hashOn), awaitingUse: parts.awaitingUse };
}
