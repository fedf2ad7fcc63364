/**
 * An EndpointSource whose sets a unit test sends by hand, counting the live watches of each
 * service: what a test of a source's user needs to see which destinations it watches, and when.
 */
import type { Endpoint } from '../../common/config/schema.js';
import type { EndpointListener, EndpointSource } from '../../sidecar/discovery/source.js';

export class ManualEndpointSource implements EndpointSource {
  readonly listeners = new Map<string, Set<EndpointListener>>();

  watch(service: string, listener: EndpointListener): () => void {
    const set = this.listeners.get(service) ?? new Set();
    this.listeners.set(service, set);
    set.add(listener);
    return () => set.delete(listener);
  }

  send(service: string, endpoints: readonly Endpoint[]): void {
    for (const l of this.listeners.get(service) ?? []) l(endpoints);
  }

  watching(service: string): number {
    return this.listeners.get(service)?.size ?? 0;
  }

  async close(): Promise<void> {}
}
