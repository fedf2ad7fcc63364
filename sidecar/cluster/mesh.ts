/**
 * The sidecar's view of the mesh: the snapshot in force and, per destination service, the
 * compiled `ServiceRuntime` the request path reads. A new snapshot or endpoint set builds new
 * runtimes and swaps them in; breakers, outlier detectors, retry budgets and endpoint pools
 * are kept across rebuilds while their policy is unchanged, and mirror copies in flight are
 * counted across them. Where discovery costs a connection per destination (Consul behind a
 * control plane), a destination's own watch starts with its first request, not with the
 * snapshot that names it.
 */
import type { Endpoint, ServicePolicy, Snapshot } from '../../common/config/schema.js';
import { defaultServicePolicy } from '../../common/config/schema.js';
import type { Logger } from '../../common/log.js';
import { UNNAMED_PEER, type EjectionState } from '../../common/proto/telemetry.js';
import { compileIntentions, type IntentionsEvaluator, type PairVerdict } from '../authz/intentions.js';
import type { EndpointSource } from '../discovery/source.js';
import { CircuitBreaker } from '../resilience/breaker.js';
import { OutlierDetector } from '../resilience/outlier.js';
import { RetryBudget } from '../resilience/retry-budget.js';
import { InboundRateLimit } from '../resilience/rate-limit.js';
import type { MirrorInFlight } from '../stages/mirror.js';
import { ownEntry } from '../../common/config/own.js';
import type { EdgeMetrics, SidecarMetrics } from '../telemetry/metrics.js';
import { failoverSubsetsByService } from '../../common/routing/failover.js';
import { compileFailover } from './failover.js';
import { buildServiceRuntime, type ServiceRuntime } from './service-runtime.js';
import type { EndpointPools, UpstreamEndpoint } from './upstream-endpoint.js';

interface ServiceState {
  readonly name: string;
  policy: ServicePolicy;
  rules: Snapshot['routes'][string] | undefined;
  endpoints: readonly UpstreamEndpoint[];
  lastEndpoints: readonly Endpoint[];
  breakers: Map<string, CircuitBreaker>;
  /** Keyed by rule name and mirror subset. */
  readonly mirrors: Map<string, MirrorInFlight>;
  outlier: OutlierDetector;
  budget: RetryBudget;
  /** Watched by `endpointSource` until its first request starts the watch of `endpointSourceOnUse`. */
  awaitingUse: boolean;
  unwatch: () => void;
}

export interface MeshDeps {
  /** This sidecar's own service (the `source` of outbound metrics). */
  readonly self: string;
  readonly endpointSource: EndpointSource;
  /**
   * Where a destination's endpoints come from once the app has sent it a request, when that
   * differs from `endpointSource`, which serves until then (control-plane mode with Consul:
   * the pushed endpoints, then Consul's). Each watch of Consul parks a connection to the
   * agent, whose per-address limit all the sidecars beside it share, while the snapshot names
   * every service of the catalog: a destination the app never calls holds none (as Linkerd
   * resolves a destination on its first use, and Consul Connect watches declared upstreams only).
   */
  readonly endpointSourceOnUse?: EndpointSource;
  readonly pools: EndpointPools;
  readonly metrics: SidecarMetrics;
  readonly logger: Logger;
  readonly random?: () => number;
}

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

export class Mesh {
  private readonly states = new Map<string, ServiceState>();
  private readonly runtimes = new Map<string, ServiceRuntime>();
  private current: Snapshot | undefined;
  private evaluator: IntentionsEvaluator = compileIntentions(undefined);
  private inboundLimit: InboundRateLimit | null = null;
  /** Per service, the subsets failover lists send to (the snapshot's, kept for endpoint changes). */
  private failoverSubsets = new Map<string, Set<string>>();

  constructor(private readonly deps: MeshDeps) {}

  /** This sidecar's own service's `rateLimit`, which its inbound requests take tokens from; null without one. */
  get rateLimit(): InboundRateLimit | null {
    return this.inboundLimit;
  }

  get snapshot(): Snapshot | undefined {
    return this.current;
  }

  /**
   * The runtime of a destination, or undefined when the snapshot does not know it. The request
   * path's lookup (HTTP/1.1, HTTP/2 and upgrades alike), so a destination's first request here
   * starts the watch deferred until then (MeshDeps.endpointSourceOnUse).
   */
  service(name: string): ServiceRuntime | undefined {
    const runtime = this.runtimes.get(name);
    return runtime?.awaitingUse === true ? this.firstUse(runtime) : runtime;
  }

  /**
   * Where requests the sidecar answers before choosing a subset are counted (no Host, unknown
   * service, no matching rule): `destination` is the service when the snapshot knows it, else
   * `unknown` (a name from the request must not become a label), with no subset.
   */
  unroutedEdge(service: string | undefined): EdgeMetrics {
    return this.deps.metrics.edge('outbound', this.deps.self, service !== undefined && this.runtimes.has(service) ? service : UNNAMED_PEER, '');
  }

  /** What the intentions of the snapshot in force say of the pair's calls; `source` undefined for a caller without identity. */
  authorize(source: string | undefined, destination: string): PairVerdict {
    return this.evaluator(source, destination);
  }

  install(snapshot: Snapshot): void {
    this.current = snapshot;
    this.evaluator = compileIntentions(snapshot.intentions);
    // Kept while the limit is unchanged; a changed one starts with full buckets.
    const limit = ownEntry(snapshot.services, this.deps.self)?.rateLimit;
    if (!same(limit, this.inboundLimit?.policy)) this.inboundLimit = limit === undefined ? null : new InboundRateLimit(limit);
    const names = new Set([...Object.keys(snapshot.services), ...Object.keys(snapshot.routes)]);
    this.failoverSubsets = failoverSubsetsByService(snapshot.services);
    for (const [name, state] of this.states) {
      if (names.has(name)) continue;
      state.unwatch();
      this.closeState(state);
      this.states.delete(name);
      for (const subset of this.runtimes.get(name)?.subsets.keys() ?? []) this.deps.metrics.forgetSubset(name, subset);
      this.runtimes.delete(name);
      this.deps.pools.drop(name);
    }
    for (const name of names) {
      const policy = ownEntry(snapshot.services, name) ?? defaultServicePolicy;
      const rules = ownEntry(snapshot.routes, name);
      const state = this.states.get(name);
      if (state === undefined) {
        this.addService(name, policy, rules);
        continue;
      }
      this.updatePolicy(state, policy);
      state.rules = rules;
      this.rebuild(state);
    }
  }

  /** Endpoints per service and subset with health, outlier and breaker state (and failover targets, `service/subset`, where it has some), for /clusters. */
  clusters(): object {
    const out: Record<string, object> = {};
    for (const [name, runtime] of this.runtimes) {
      const outlier = new Map(runtime.outlier.state().map((s) => [s.key, s]));
      const endpoint = (e: UpstreamEndpoint): object => {
        const o = outlier.get(e.key);
        const ejected = runtime.outlier.isEjected(e.key);
        return { ...e.toJSON(), health: ejected ? 'ejected' : 'healthy', outlier: o ? { consecutiveErrors: o.consecutiveErrors, ejections: o.ejections, ejectedUntil: o.ejectedUntil ? new Date(o.ejectedUntil).toISOString() : null } : null };
      };
      const subsets: Record<string, object> = {};
      for (const [subsetName, s] of runtime.subsets) {
        subsets[subsetName] = { endpoints: s.endpoints.map(endpoint), breaker: s.breaker?.toJSON() ?? null, ...(s.failover === null ? {} : { failover: s.failover.targets.map((t) => t.label) }) };
      }
      out[name] = { lb: runtime.policy.lb, endpoints: runtime.endpoints.map(endpoint), subsets, retryBudgetAvailable: runtime.budget.available() };
    }
    return out;
  }

  /** The endpoints outlier detection holds ejected now, per destination: reported to the control plane with the stats. */
  ejections(): EjectionState[] {
    const out: EjectionState[] = [];
    for (const [destination, state] of this.states) {
      if (state.outlier.ejectedCount === 0) continue;
      for (const s of state.outlier.state()) {
        if (s.ejectedUntil === undefined) continue;
        out.push({ destination, endpoint: s.key, since: s.ejectedSince!, until: s.ejectedUntil, ...(s.ejectionReason ? { reason: s.ejectionReason } : {}) });
      }
    }
    return out;
  }

  close(): void {
    for (const state of this.states.values()) {
      state.unwatch();
      this.closeState(state);
    }
    this.states.clear();
    this.runtimes.clear();
  }

  private addService(name: string, policy: ServicePolicy, rules: ServiceState['rules']): void {
    const state: ServiceState = {
      name,
      policy,
      rules,
      endpoints: [],
      lastEndpoints: [],
      breakers: new Map(),
      mirrors: new Map(),
      outlier: this.newOutlier(name, policy),
      budget: new RetryBudget(policy.retries.budget),
      awaitingUse: this.deps.endpointSourceOnUse !== undefined,
      unwatch: () => {},
    };
    this.states.set(name, state);
    this.rebuild(state);
    this.watchEndpoints(state, this.deps.endpointSource);
  }

  /**
   * Watches `state`'s endpoints in `source` with its policy's options, ending the watch before.
   * The new watch starts first, so a source both share (the pushed endpoints) never drops the
   * destination in between.
   */
  private watchEndpoints(state: ServiceState, source: EndpointSource): void {
    const before = state.unwatch;
    state.unwatch = source.watch(state.name, (endpoints) => this.onEndpoints(state, endpoints), { onlyPassing: state.policy.onlyPassing });
    before();
  }

  /** The runtime in force once `runtime`'s destination is watched as one in use. */
  private firstUse(runtime: ServiceRuntime): ServiceRuntime {
    const state = this.states.get(runtime.name)!;
    runtime.awaitingUse = false;
    state.awaitingUse = false;
    this.watchEndpoints(state, this.deps.endpointSourceOnUse!);
    // A set the new watch handed over at once has rebuilt the runtime.
    return this.runtimes.get(state.name)!;
  }

  private onEndpoints(state: ServiceState, endpoints: readonly Endpoint[]): void {
    if (this.states.get(state.name) !== state) return;
    state.lastEndpoints = endpoints;
    state.endpoints = this.deps.pools.sync(state.name, endpoints, state.policy.protocol);
    state.outlier.setEndpoints(state.endpoints.map((e) => e.key));
    this.rebuild(state);
  }

  private updatePolicy(state: ServiceState, policy: ServicePolicy): void {
    const old = state.policy;
    state.policy = policy;
    if (old.protocol !== policy.protocol) state.endpoints = this.deps.pools.sync(state.name, state.lastEndpoints, policy.protocol);
    if (!same(old.circuitBreaker, policy.circuitBreaker)) for (const b of state.breakers.values()) b.reconfigure(policy.circuitBreaker);
    if (!same(old.outlierDetection, policy.outlierDetection)) {
      state.outlier.close();
      state.outlier = this.newOutlier(state.name, policy);
      state.outlier.setEndpoints(state.endpoints.map((e) => e.key));
    }
    if (!same(old.retries.budget, policy.retries.budget)) state.budget = new RetryBudget(policy.retries.budget);
    if (old.onlyPassing !== policy.onlyPassing) this.watchEndpoints(state, this.watchedIn(state));
  }

  /** The source `state`'s endpoints are watched in now. */
  private watchedIn(state: ServiceState): EndpointSource {
    return state.awaitingUse ? this.deps.endpointSource : this.deps.endpointSourceOnUse ?? this.deps.endpointSource;
  }

  private newOutlier(name: string, policy: ServicePolicy): OutlierDetector {
    const metrics = this.deps.metrics;
    const logger = this.deps.logger;
    return new OutlierDetector(policy.outlierDetection, {
      onEject: (key, until) => {
        metrics.outlierEjected(name);
        // `destination`: the logger's own `service` field is this sidecar's.
        logger.warn({ destination: name, endpoint: key, until: new Date(until).toISOString() }, 'endpoint ejected by outlier detection');
      },
      onChange: () => this.publishEndpointGauges(name),
    });
  }

  private rebuild(state: ServiceState): void {
    const { metrics, self } = this.deps;
    const name = state.name;
    const runtime = buildServiceRuntime(
      {
        name,
        policy: state.policy,
        rules: state.rules,
        endpoints: state.endpoints,
        outlier: state.outlier,
        budget: state.budget,
        awaitingUse: state.awaitingUse,
        failover: (subset) => compileFailover(this.current ?? { services: {} }, name, subset, (service) => this.service(service)),
        failoverSubsets: this.failoverSubsets.get(name) ?? [],
        breaker: (subset) => {
          let b = state.breakers.get(subset);
          if (b === undefined) {
            b = new CircuitBreaker(state.policy.circuitBreaker, {
              // A subset a reload removed keeps its breaker for the requests already on their way, not its series.
              onStateChange: (s) => {
                if (this.runtimes.get(name)?.subsets.has(subset) === true) metrics.setCircuitState(name, subset, s);
              },
              onReject: () => metrics.circuitRejected(name, subset),
            });
            state.breakers.set(subset, b);
          }
          // Each build shows its subsets' state: a subset back after a reload removed it has its series again.
          metrics.setCircuitState(name, subset, b.state);
          return b;
        },
        edge: (subset) => metrics.edge('outbound', self, name, subset),
        mirrorInFlight: (rule, subset) => {
          const key = `${rule}\0${subset}`;
          let copies = state.mirrors.get(key);
          if (copies === undefined) state.mirrors.set(key, (copies = { count: 0 }));
          return copies;
        },
      },
      this.deps.random,
    );
    const replaced = this.runtimes.get(name);
    if (replaced !== undefined) {
      for (const [subset, s] of replaced.subsets) {
        s.successor = runtime.subsets.get(subset) ?? null;
        // Gone from the rules and the policy: so are its gauges. Its breaker stays (open or
        // not) for the requests that chose the subset before the reload and try it after.
        if (s.successor === null) metrics.forgetSubset(name, subset);
      }
    }
    this.runtimes.set(name, runtime);
    this.publishEndpointGauges(name);
  }

  private publishEndpointGauges(name: string): void {
    const runtime = this.runtimes.get(name);
    if (runtime === undefined) return;
    for (const [subset, s] of runtime.subsets) {
      let ejected = 0;
      for (const e of s.endpoints) if (runtime.outlier.isEjected(e.key)) ejected++;
      this.deps.metrics.setEndpoints(name, subset, 'healthy', s.endpoints.length - ejected);
      this.deps.metrics.setEndpoints(name, subset, 'ejected', ejected);
    }
  }

  private closeState(state: ServiceState): void {
    for (const b of state.breakers.values()) b.close();
    state.outlier.close();
  }
}
