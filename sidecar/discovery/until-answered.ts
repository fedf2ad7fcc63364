/**
 * Consul's endpoints, with the control plane's as a stand-in until Consul first answers for a
 * destination. A `--consul` sidecar in control-plane mode whose local agent is down when it
 * starts has no last known set of its own, while the snapshot it was pushed lists the
 * instances the control plane read from the catalog: routing by those until the agent answers
 * keeps a request that would succeed from failing `503 no-healthy-endpoints` (SPEC §3, static
 * stability). Once Consul has answered for a destination, its sets alone count. The mesh
 * watches a destination through this only from its first request on (MeshDeps.endpointSourceOnUse).
 */
import type { EndpointListener, EndpointSource, WatchOptions } from './source.js';

export class UntilAnsweredSource implements EndpointSource {
  constructor(
    private readonly primary: EndpointSource,
    private readonly standIn: EndpointSource,
  ) {}

  watch(service: string, listener: EndpointListener, options?: WatchOptions): () => void {
    let answered = false;
    let stopStandIn: (() => void) | undefined = this.standIn.watch(service, (endpoints) => {
      if (!answered) listener(endpoints);
    }, options);
    const stopPrimary = this.primary.watch(service, (endpoints) => {
      answered = true;
      stopStandIn?.();
      stopStandIn = undefined;
      listener(endpoints);
    }, options);
    return () => {
      stopStandIn?.();
      stopPrimary();
    };
  }

  async close(): Promise<void> {
    await Promise.all([this.primary.close(), this.standIn.close()]);
  }
}
