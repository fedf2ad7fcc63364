/**
 * The resilience state of one destination service: its retry budget, its outlier detector
 * (per endpoint), and a circuit breaker per subset, wired to the metrics. `Resilience`
 * keeps one per service across snapshots and rebuilds one only when that service's policy
 * changed, so a config push about something else does not reset breakers or ejections.
 */
import { isDeepStrictEqual } from 'node:util';
import { defaultServicePolicy, type RetryPolicy, type ServicePolicy } from '../../common/config/schema.js';
import type { SidecarMetrics } from '../telemetry/metrics.js';
import { CircuitBreaker } from './breaker.js';
import { OutlierDetector } from './outlier.js';
import { RetryBudget } from './retry-budget.js';
import { RetryPlan } from './retry-plan.js';

export class ServiceResilience {
  readonly budget: RetryBudget;
  readonly outlier: OutlierDetector;
  /** The service-level retry plan; rules that override `retries` get their own from `retryPlan`. */
  readonly retries: RetryPlan;
  private readonly breakers = new Map<string, CircuitBreaker>();

  constructor(
    readonly service: string,
    readonly policy: ServicePolicy,
    private readonly metrics?: SidecarMetrics,
    onOutlierChange?: () => void,
  ) {
    this.budget = new RetryBudget(policy.retries.budget);
    this.outlier = new OutlierDetector(policy.outlierDetection, {
      onEject: () => metrics?.outlierEjected(service),
      onChange: onOutlierChange,
    });
    this.retries = new RetryPlan(policy.retries, service, this.budget, metrics);
  }

  /** A retry plan for a rule's own `retries` (sharing this service's budget). */
  retryPlan(override: RetryPolicy | undefined): RetryPlan {
    return override === undefined ? this.retries : new RetryPlan(override, this.service, this.budget, this.metrics);
  }

  /** The breaker of `subset`, made on first use. */
  breaker(subset: string): CircuitBreaker {
    let breaker = this.breakers.get(subset);
    if (breaker === undefined) {
      const metrics = this.metrics;
      const service = this.service;
      breaker = new CircuitBreaker(this.policy.circuitBreaker, {
        onStateChange: (state) => metrics?.setCircuitState(service, subset, state),
        onReject: () => metrics?.circuitRejected(service, subset),
      });
      metrics?.setCircuitState(service, subset, 'closed');
      this.breakers.set(subset, breaker);
    }
    return breaker;
  }

  /** For /clusters: breaker per subset and outlier state per endpoint. */
  toJSON(): { breakers: Record<string, ReturnType<CircuitBreaker['toJSON']>>; outlier: ReturnType<OutlierDetector['state']>; retryBudgetAvailable: number } {
    const breakers: Record<string, ReturnType<CircuitBreaker['toJSON']>> = {};
    for (const [subset, b] of this.breakers) breakers[subset] = b.toJSON();
    return { breakers, outlier: this.outlier.state(), retryBudgetAvailable: this.budget.available() };
  }

  close(): void {
    for (const b of this.breakers.values()) b.close();
    this.breakers.clear();
    this.outlier.close();
  }
}

/** Every destination's resilience state, kept across snapshots and made on first use. */
export class Resilience {
  private readonly services = new Map<string, ServiceResilience>();
  private policies: Readonly<Record<string, ServicePolicy>> = {};

  constructor(
    private readonly metrics?: SidecarMetrics,
    private readonly onOutlierChange?: (service: string) => void,
  ) {}

  /** Installs the policies of a new snapshot; state of services whose policy is unchanged survives. */
  apply(policies: Readonly<Record<string, ServicePolicy>>): void {
    this.policies = policies;
    for (const [name, current] of this.services) {
      const next = policies[name] ?? defaultServicePolicy;
      if (!isDeepStrictEqual(withoutEndpoints(next), withoutEndpoints(current.policy))) {
        current.close();
        this.services.delete(name);
      }
    }
  }

  /** The state of `service` (a service the snapshot does not mention gets the default policy). */
  get(service: string): ServiceResilience {
    let state = this.services.get(service);
    if (state === undefined) {
      state = new ServiceResilience(service, this.policies[service] ?? defaultServicePolicy, this.metrics, () => this.onOutlierChange?.(service));
      this.services.set(service, state);
    }
    return state;
  }

  /** For /clusters. */
  toJSON(): Record<string, ReturnType<ServiceResilience['toJSON']>> {
    const out: Record<string, ReturnType<ServiceResilience['toJSON']>> = {};
    for (const [name, s] of this.services) out[name] = s.toJSON();
    return out;
  }

  close(): void {
    for (const s of this.services.values()) s.close();
    this.services.clear();
  }
}

/** Endpoint lists change without the policy changing (static mode); they must not reset state. */
function withoutEndpoints(policy: ServicePolicy): Omit<ServicePolicy, 'endpoints'> {
  const { endpoints: _endpoints, ...rest } = policy;
  return rest;
}
