/**
 * Static discovery: endpoints come from `services.<name>.endpoints` of the snapshot in force.
 * `update` is called with every snapshot; watchers hear only about services whose endpoint
 * list actually changed.
 */
import { ownEntry } from '../../common/config/own.js';
import type { Endpoint, Snapshot } from '../../common/config/schema.js';
import type { EndpointListener, EndpointSource } from './source.js';

export class StaticEndpointSource implements EndpointSource {
  private snapshot: Snapshot | undefined;
  private readonly watchers = new Map<string, Set<EndpointListener>>();
  private readonly last = new Map<string, string>();

  update(snapshot: Snapshot): void {
    this.snapshot = snapshot;
    for (const [service, listeners] of this.watchers) {
      const endpoints = this.endpointsOf(service);
      const key = JSON.stringify(endpoints);
      if (this.last.get(service) === key) continue;
      this.last.set(service, key);
      for (const listener of listeners) listener(endpoints);
    }
  }

  watch(service: string, listener: EndpointListener): () => void {
    let listeners = this.watchers.get(service);
    if (listeners === undefined) {
      listeners = new Set();
      this.watchers.set(service, listeners);
    }
    listeners.add(listener);
    const endpoints = this.endpointsOf(service);
    this.last.set(service, JSON.stringify(endpoints));
    listener(endpoints);
    return () => {
      listeners.delete(listener);
      if (listeners.size === 0) {
        this.watchers.delete(service);
        this.last.delete(service);
      }
    };
  }

  async close(): Promise<void> {
    this.watchers.clear();
  }

  private endpointsOf(service: string): readonly Endpoint[] {
    return ownEntry(this.snapshot?.services, service)?.endpoints ?? [];
  }
}
