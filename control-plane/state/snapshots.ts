/**
 * Turns store and discovery changes into versioned snapshots. Changes that arrive close
 * together (a burst of writes, many sidecars connecting at once) are coalesced into one
 * snapshot; a recomposition that changes nothing a sidecar sees publishes nothing. Versions
 * are integers that increase on every publish and stay increasing across restarts (seeded
 * from the clock), so a sidecar never sees the version it runs reused for other content.
 */
import type { Logger } from '../../common/log.js';
import type { Discovery } from '../registry/discovery.js';
import type { ConfigStore } from '../store/store.js';
import { StoredConfigError } from '../store/stored-entries.js';
import { composeSnapshot, type SnapshotBody } from './compose.js';
import { checkSnapshotSize } from './snapshot-size.js';
import type { MeshConfig } from './mesh-config.js';

export interface PublishedSnapshot {
  readonly version: string;
  /** The SPEC §4 snapshot as pushed (`Snapshot.json`). */
  readonly json: string;
  readonly body: SnapshotBody;
  /** When the change that caused it was first seen (ms since epoch), for convergence figures. */
  readonly changedAt: number;
  /** Why it is not pushed: composed while discovery did not know the instances (see `Discovery.unknown`). */
  readonly held?: string;
}

export interface SnapshotPublisherOptions {
  /** How long to wait after a change for more changes before composing. */
  readonly coalesceMs: number;
  readonly logger: Logger;
  readonly now?: () => number;
}

export class SnapshotPublisher {
  private latest: PublishedSnapshot | undefined;
  private latestBodyJson = '';
  private readonly listeners = new Set<(snapshot: PublishedSnapshot) => void>();
  private timer: NodeJS.Timeout | undefined;
  private composing: Promise<void> | undefined;
  private pendingSince: number | undefined;
  /** Why the last compose failed, for the start's error message. */
  private lastError: Error | undefined;
  private readonly unsubscribe: (() => void)[] = [];
  private readonly now: () => number;

  constructor(
    private readonly config: MeshConfig,
    private readonly store: ConfigStore,
    private readonly discovery: Discovery,
    private readonly options: SnapshotPublisherOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  async start(): Promise<void> {
    this.unsubscribe.push(this.store.watch(() => this.changed()), this.discovery.onChange(() => this.changed()));
    this.pendingSince = this.now();
    await this.compose(true);
    if (this.latest) return;
    // Invalid stored entries are thrown as they are, for the start to report them with every
    // other refused entry in one message.
    if (this.lastError instanceof StoredConfigError) throw this.lastError;
    throw new Error(`cannot compose a snapshot from the stored config: ${this.lastError?.message ?? 'see the log'}`);
  }

  current(): PublishedSnapshot {
    if (!this.latest) throw new Error('snapshot publisher not started');
    return this.latest;
  }

  /**
   * Why the stored config is not what `current()` carries: the message of the last compose,
   * when it failed (another stored entry refused, say); undefined once one succeeds. Read
   * after `settled()`, it says whether a write just made reached sidecars.
   */
  unpublished(): string | undefined {
    if (this.lastError) return `the stored config cannot be composed: ${this.lastError.message}`;
    return this.latest?.held;
  }

  /** What sidecars route by while a write is unpublished, for the messages that say so. */
  kept(): string {
    const current = this.current();
    return current.held === undefined ? `snapshot ${current.version}` : 'the snapshot they run';
  }

  onPublish(listener: (snapshot: PublishedSnapshot) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Resolves once every change seen so far is reflected in `current()`. */
  async settled(): Promise<void> {
    while (this.timer || this.composing) {
      if (this.timer) {
        clearTimeout(this.timer);
        this.timer = undefined;
        this.composing ??= this.compose();
      }
      await this.composing;
    }
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    for (const stop of this.unsubscribe) stop();
    this.listeners.clear();
  }

  private changed(): void {
    this.pendingSince ??= this.now();
    this.schedule();
  }

  private schedule(): void {
    if (this.timer || this.composing) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.composing = this.compose();
    }, this.options.coalesceMs);
  }

  /** `starting`: the first compose, whose failure `start` throws (there is no previous snapshot to keep). */
  private async compose(starting = false): Promise<void> {
    const changedAt = this.pendingSince ?? this.now();
    this.pendingSince = undefined;
    try {
      const body = composeSnapshot(await this.config.load(), this.discovery.instances());
      const bodyJson = JSON.stringify(body);
      const held = this.discovery.unknown?.();
      if (bodyJson !== this.latestBodyJson || held !== this.latest?.held) this.publish(body, bodyJson, changedAt, held);
      this.lastError = undefined;
    } catch (err) {
      this.lastError = err as Error;
      if (!starting) this.options.logger.error({ err }, 'composing a snapshot failed; sidecars keep the previous one');
    } finally {
      this.composing = undefined;
      // Changes seen while composing need another pass.
      if (this.pendingSince !== undefined) this.schedule();
    }
  }

  private publish(body: SnapshotBody, bodyJson: string, changedAt: number, held: string | undefined): void {
    const previous = this.latest ? Number(this.latest.version) : 0;
    const version = String(Math.max(previous + 1, this.now()));
    // Not re-validated here: every stored piece was validated on load (MeshConfig) and every
    // instance at its Hello or as the Consul catalog read it, and validating a thousand endpoints with zod costs ~100 ms on the push path.
    const json = JSON.stringify({ version, ...body });
    // Writes are refused before they make one too large (MeshConfig), but two replicas writing
    // at once can still get there together: kept back, as a config that cannot be composed is.
    checkSnapshotSize(version, json, 'compose');
    this.latest = { version, json, body, changedAt, held };
    this.latestBodyJson = bodyJson;
    if (held !== undefined) {
      this.options.logger.warn({ version }, `snapshot composed but held from sidecars (they keep the one they run): ${held}`);
      return;
    }
    this.options.logger.info({ version, services: Object.keys(body.services ?? {}).length }, 'snapshot published');
    for (const listener of this.listeners) listener(this.latest);
  }
}
