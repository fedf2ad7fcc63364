/**
 * The endpoints a sidecar sends to, each with its own undici Pool (keep-alive connections
 * reused across requests). Endpoint objects live as long as discovery lists them, so their
 * pools, in-flight counts and outlier history survive config and endpoint-set changes;
 * only their membership in pickers is rebuilt.
 */
import type { Dispatcher } from 'undici';
import { hostPort } from '../../common/net/host-port.js';
import type { Endpoint } from '../../common/config/schema.js';
import type { BalancedEndpoint } from '../balancers/balancer.js';

export class UpstreamEndpoint implements BalancedEndpoint {
  /** Attempts in flight, kept by the attempt loop; least-request reads it. */
  active = 0;
  /**
   * Discovery dropped it and its pool is closed: a call that finds the pool closed failed
   * because of the reload, not the endpoint, and is sent again on the current endpoint set.
   */
  removed = false;

  constructor(
    readonly key: string,
    readonly address: string,
    readonly port: number,
    readonly labels: Readonly<Record<string, string>>,
    public pool: Dispatcher,
  ) {}

  toJSON(): object {
    return { address: this.address, port: this.port, labels: this.labels, active: this.active };
  }
}

export type Protocol = 'http' | 'grpc';

/** Makes the pool for one endpoint of `service` (TLS to a peer sidecar, or plain; HTTP/2 for gRPC). */
export type PoolFactory = (service: string, address: string, port: number, protocol: Protocol) => Dispatcher;

/** An endpoint's key, `address:port` (outlier detection tracks endpoints by it). */
export const endpointKey = hostPort;

function retire(endpoint: UpstreamEndpoint): void {
  endpoint.removed = true;
  void endpoint.pool.close().catch(() => {});
}

/** The endpoint objects of every service, keyed by service and address. */
export class EndpointPools {
  private readonly byService = new Map<string, Map<string, UpstreamEndpoint>>();
  private readonly protocols = new Map<string, Protocol>();

  constructor(private factory: PoolFactory) {}

  /** The endpoint objects for `service`'s current set: existing ones reused, new ones created, gone ones closed. */
  sync(service: string, endpoints: readonly Endpoint[], protocol: Protocol = 'http'): UpstreamEndpoint[] {
    let previous = this.byService.get(service) ?? new Map<string, UpstreamEndpoint>();
    if ((this.protocols.get(service) ?? protocol) !== protocol) {
      // HTTP/1.1 and HTTP/2 pools are different kinds: start over.
      for (const old of previous.values()) retire(old);
      previous = new Map();
    }
    this.protocols.set(service, protocol);
    const next = new Map<string, UpstreamEndpoint>();
    for (const e of endpoints) {
      const key = endpointKey(e.address, e.port);
      if (next.has(key)) continue;
      const existing = previous.get(key);
      const sameLabels = existing !== undefined && JSON.stringify(existing.labels) === JSON.stringify(e.labels);
      next.set(key, sameLabels ? existing : new UpstreamEndpoint(key, e.address, e.port, e.labels, existing?.pool ?? this.factory(service, e.address, e.port, protocol)));
    }
    for (const [key, old] of previous) if (!next.has(key)) retire(old);
    this.byService.set(service, next);
    return [...next.values()];
  }

  drop(service: string): void {
    this.sync(service, [], this.protocols.get(service));
    this.byService.delete(service);
    this.protocols.delete(service);
  }

  /** New pools for every endpoint (the TLS identity changed); old pools finish their requests and close. */
  replaceFactory(factory: PoolFactory): void {
    this.factory = factory;
    for (const [service, endpoints] of this.byService) {
      for (const e of endpoints.values()) {
        const old = e.pool;
        e.pool = factory(service, e.address, e.port, this.protocols.get(service) ?? 'http');
        void old.close().catch(() => {});
      }
    }
  }

  async close(): Promise<void> {
    const closing: Promise<void>[] = [];
    for (const endpoints of this.byService.values()) for (const e of endpoints.values()) closing.push(e.pool.close().catch(() => {}));
    this.byService.clear();
    await Promise.all(closing);
  }
}
