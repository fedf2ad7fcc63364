/**
 * Where the control plane learns the instances of each service. One interface, two
 * sources: the built-in registry (sidecars announce themselves over the push stream) when
 * no Consul is configured, and Consul's catalog otherwise. Endpoints in pushed snapshots
 * and `GET /api/v1/services` read only this interface.
 */
export interface Instance {
  readonly service: string;
  readonly id: string;
  readonly address: string;
  /** The sidecar's inbound (mTLS) port: where other sidecars send this instance traffic. */
  readonly port: number;
  readonly protocol: 'http' | 'grpc';
  /** Includes `version` (the subset label). */
  readonly labels: Readonly<Record<string, string>>;
  /**
   * `healthy` while its sidecar is connected and ready (or its Consul checks pass);
   * `disconnected` during the grace period; `warning` when a Consul check warns and none is
   * critical (still an endpoint, as in Consul's mesh); `critical` when the sidecar says it is
   * not ready or a Consul check is critical (never an endpoint).
   */
  readonly health: 'healthy' | 'disconnected' | 'warning' | 'critical';
}

/**
 * Whether an instance is an endpoint of pushed snapshots: any but a `critical` one (a
 * `disconnected` one keeps its traffic for the grace period), and with the service's
 * `onlyPassing` not one in `warning` either.
 */
export function isEndpoint(instance: Instance, onlyPassing = false): boolean {
  return instance.health !== 'critical' && !(onlyPassing && instance.health === 'warning');
}

export interface Discovery {
  /** Every known instance, in a stable order. */
  instances(): readonly Instance[];
  /**
   * Why the instances are not known yet (Consul's catalog never read since the start), or
   * undefined once they are. A snapshot composed meanwhile would drop every service, so it is
   * held from sidecars (they keep theirs) until this clears; `onChange` listeners hear when it does.
   */
  unknown?(): string | undefined;
  /** Resolves when `unknown()` clears (at once for a source that is never unknown). */
  known?(): Promise<void>;
  /** Called after the instance set changes. Returns a function that stops listening. */
  onChange(listener: () => void): () => void;
  close(): Promise<void>;
}
