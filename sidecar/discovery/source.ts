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

export interface EndpointSource {
  /** Starts (or joins) a watch of `service`; returns a function that ends this watch. */
  watch(service: string, listener: EndpointListener): () => void;
  close(): Promise<void>;
}
