/**
 * The built-in registry: sidecars' Hello messages on the push stream become instances.
 * A stream that ends cleanly (the sidecar shut down) withdraws its instance at once; a
 * stream that breaks keeps the instance, marked disconnected, for a grace period, so a
 * network blip or a control-plane restart does not take endpoints away from the mesh.
 * A sidecar that reports itself not ready (draining, its app failing its health check, no
 * config yet) stays listed as critical and is no endpoint, as with a failing Consul check.
 */
import type { Discovery, Instance } from './discovery.js';

/** What the session that announced an instance can tell the registry about it later. */
export interface Announced {
  /** The sidecar's readiness changed (Readiness message). */
  ready(ready: boolean): void;
  /** The stream ended: `clean` removes the instance now, otherwise after the grace period. */
  end(clean: boolean): void;
}

interface Registration {
  instance: Instance;
  /** Streams currently announcing this instance id (a reconnect may overlap the old stream). */
  streams: number;
  expiry?: NodeJS.Timeout;
}

export class StreamRegistry implements Discovery {
  private readonly registrations = new Map<string, Registration>();
  private readonly listeners = new Set<() => void>();
  /** Sorted view, rebuilt on the first read after a change (reads outnumber changes). */
  private sorted: readonly Instance[] | undefined;

  constructor(private readonly graceMs: number) {}

  instances(): readonly Instance[] {
    this.sorted ??= [...this.registrations.values()]
      .map((r) => r.instance)
      .sort((a, b) => compare(a.service, b.service) || compare(a.id, b.id) || compare(a.address, b.address) || a.port - b.port);
    return this.sorted;
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Records an instance announced on a stream, ready or not as its Hello says. An instance is
   * its id at its address and port: a reconnect of the same sidecar shares its registration,
   * while two sidecars given the same `--instance-id` (a copied config) are two instances, so
   * neither replaces the other's endpoint, nor takes it away when it leaves.
   */
  announce(instance: Omit<Instance, 'health'>, ready = true): Announced {
    const key = `${instance.service}/${instance.id}/${instance.address}/${instance.port}`;
    const announced: Instance = { ...instance, health: ready ? 'healthy' : 'critical' };
    let registration = this.registrations.get(key);
    if (registration) {
      if (registration.expiry) clearTimeout(registration.expiry);
      registration.expiry = undefined;
      registration.streams++;
      const changed = !sameInstance(registration.instance, announced);
      registration.instance = announced;
      if (changed) this.changed();
    } else {
      registration = { instance: announced, streams: 1 };
      this.registrations.set(key, registration);
      this.changed();
    }
    const current = registration;
    let ended = false;
    const setReady = (isReady: boolean): void => {
      const health = isReady ? 'healthy' : 'critical';
      if (ended || this.registrations.get(key) !== current || current.instance.health === health) return;
      current.instance = { ...current.instance, health };
      this.changed();
    };
    const end = (clean: boolean): void => {
      if (ended) return;
      ended = true;
      current.streams--;
      if (this.registrations.get(key) !== current || current.streams > 0) return;
      if (clean) {
        this.registrations.delete(key);
      } else {
        current.instance = { ...current.instance, health: 'disconnected' };
        current.expiry = setTimeout(() => {
          if (this.registrations.get(key) === current && current.streams === 0) {
            this.registrations.delete(key);
            this.changed();
          }
        }, this.graceMs);
        current.expiry.unref();
      }
      this.changed();
    };
    return { ready: setReady, end };
  }

  async close(): Promise<void> {
    for (const r of this.registrations.values()) if (r.expiry) clearTimeout(r.expiry);
    this.listeners.clear();
  }

  private changed(): void {
    this.sorted = undefined;
    for (const listener of this.listeners) listener();
  }
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function sameInstance(a: Instance, b: Instance): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
