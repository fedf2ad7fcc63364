/**
 * Discovery is one interface: a source watches a service and reports its whole healthy
 * endpoint set whenever it changes (the "reset" of linkerd's resolve). Static mode and the
 * control plane's built-in registry read endpoints out of the snapshot; the Consul source
 * watches the catalog with blocking queries (in control-plane mode behind UntilAnsweredSource,
 * from a destination's first request on, the snapshot's set standing in until then and until
 * Consul first answers; see MeshDeps.endpointSourceOnUse). A source keeps its last known set through
 * outages of whatever is behind it.
 */
import type { Endpoint } from '../../common/config/schema.js';

export type EndpointListener = (endpoints: readonly Endpoint[]) => void;

/** What a watch asks of a source besides the service. */
export interface WatchOptions {
  /**
   * Only instances whose every health check passes (the service's `onlyPassing`), not those in
   * `warning` too. Only a source that reads health states (Consul) has anything to leave out;
   * the control plane applies it to the endpoints it pushes.
   */
  readonly onlyPassing?: boolean;
}

export interface EndpointSource {
  /** Starts (or joins) a watch of `service`; returns a function that ends this watch. */
  watch(service: string, listener: EndpointListener, options?: WatchOptions): () => void;
  close(): Promise<void>;
}
