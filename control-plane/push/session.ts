/**
 * One sidecar's push stream, from the control plane's side: wait for Hello, authenticate
 * it, register the instance, send the newest snapshot (unless the sidecar already runs it),
 * push every later one, and record its ACKs and NACKs. A slow sidecar is never sent a
 * backlog: while its stream is not writable only the newest snapshot is kept for it.
 */
import * as grpc from '@grpc/grpc-js';
import { randomUUID } from 'node:crypto';
import type { Logger } from '../../common/log.js';
import { endpoint, instanceId, serviceName, subsetName } from '../../common/config/schema.js';
import { lackedFeatures, runsWithoutAs, type LeftOut, type SnapshotFeature } from '../../common/config/snapshot-features.js';
import { SNAPSHOT_HELD_HEADER, TRUST_DOMAINS_COMMAND, type ControlMessage, type Hello, type SidecarMessage } from '../../common/proto/mesh.js';
import type { Announced, StreamRegistry } from '../registry/stream-registry.js';
import type { PublishedSnapshot, SnapshotPublisher } from '../state/snapshots.js';
import type { ProxyRecord, ProxyTracker } from './proxies.js';
import { lackedKey, type PushedVariant, type SnapshotVariants } from './snapshot-variants.js';

export type StreamCall = grpc.ServerDuplexStream<SidecarMessage, ControlMessage>;

/** Who the caller may act as: the service a bootstrap token or client certificate names. */
export type Authenticate = (call: StreamCall, hello: Hello) => Promise<string>;

export class StreamRejected extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
  }
}

/** What the session reports for the control plane's metrics (control-plane/metrics). */
export interface PushEvents {
  snapshotPushed(): void;
  configAnswered(result: 'ack' | 'nack'): void;
}

export interface SessionDeps {
  readonly publisher: SnapshotPublisher;
  readonly proxies: ProxyTracker;
  /** The built-in registry, when it is the discovery source; undefined with Consul. */
  readonly registry?: StreamRegistry;
  readonly authenticate: Authenticate;
  readonly logger: Logger;
  /** Sidecars that already run a snapshot get none before this time (ms since epoch), see PushServer. */
  readonly holdUntil: () => number;
  readonly helloTimeoutMs: number;
  /** The trust domains whose identities the mesh takes (the CA's, then its aliases), told to every sidecar. */
  readonly trustDomains?: readonly string[];
  /** The message carrying a snapshot for the features a sidecar lacks, built once per snapshot for all streams alike. */
  readonly variants: SnapshotVariants;
  readonly onTelemetry?: (proxy: ProxyRecord, kind: string, json: string) => void;
  readonly onGoodbye?: (proxy: ProxyRecord) => void;
  readonly events?: PushEvents;
}

export class StreamSession {
  record: ProxyRecord | undefined;
  private blocked = false;
  private registration: Announced | undefined;
  private stopPublish: (() => void) | undefined;
  private closed = false;
  private helloSeen = false;
  /** The snapshot version its Hello said it runs, if any. */
  private lastVersion: string | undefined;
  /** The snapshot features it does not understand (its Hello's list against ours), and their lackedKey. */
  private lacked: readonly SnapshotFeature[] = [];
  private lackedKey = '';
  /**
   * The set of things left out it was last warned of: one, not every set since, which grew
   * with each config change for the stream's life (per stream, and a stream per sidecar).
   */
  private warnedOf = '';

  constructor(
    private readonly call: StreamCall,
    private readonly deps: SessionDeps,
    private readonly onClose: (session: StreamSession) => void,
  ) {
    const helloTimer = setTimeout(() => this.reject(new StreamRejected(grpc.status.DEADLINE_EXCEEDED, 'no Hello received')), deps.helloTimeoutMs);
    call.on('data', (message: SidecarMessage) => {
      if (!this.helloSeen) {
        this.helloSeen = true;
        clearTimeout(helloTimer);
        this.hello(message).catch((err: Error) => this.reject(err));
      } else this.message(message);
    });
    // A half-close from the sidecar is its goodbye: it is shutting down on purpose. A broken
    // connection also ends the readable side, but cancels the call right after: wait a turn
    // of the event loop to tell the two apart.
    call.on('end', () => {
      clearTimeout(helloTimer);
      setImmediate(() => {
        if (call.cancelled) return this.close(false);
        this.close(true);
        call.end();
      });
    });
    call.on('cancelled', () => this.close(false));
    call.on('error', () => this.close(false));
    call.on('close', () => {
      clearTimeout(helloTimer);
      this.close(false);
    });
  }

  /** Sends `snapshot` unless it is held or the stream is backed up; then the newest is sent on drain. */
  push(snapshot: PublishedSnapshot): void {
    const record = this.record;
    if (!record || this.closed || snapshot.held !== undefined || record.sentVersion === snapshot.version) return;
    if (this.blocked) return;
    record.sentVersion = snapshot.version;
    const variant = this.variant(snapshot);
    const writable = this.call.write(variant.message);
    if (this.lackedKey !== '') this.runsWithout(record, variant.leftOut, snapshot.version);
    this.deps.events?.snapshotPushed();
    if (!writable) {
      this.blocked = true;
      this.call.once('drain', () => {
        this.blocked = false;
        this.push(this.deps.publisher.current());
      });
    }
  }

  /** Ends the stream from the control plane's side (shutdown); the sidecar reconnects. */
  end(): void {
    if (!this.closed) this.call.end();
  }

  sendCommand(kind: string, json: string): void {
    if (!this.closed) this.call.write({ command: { kind, json } });
  }

  private async hello(message: SidecarMessage): Promise<void> {
    const hello = message.hello;
    if (message.msg !== 'hello' || !hello) throw new StreamRejected(grpc.status.INVALID_ARGUMENT, 'the first message must be Hello');
    const problem = helloProblem(hello);
    if (problem) throw new StreamRejected(grpc.status.INVALID_ARGUMENT, `invalid Hello: ${problem}`);
    const service = await this.deps.authenticate(this.call, hello);
    if (service !== hello.service) {
      throw new StreamRejected(grpc.status.PERMISSION_DENIED, `credentials are for service "${service}", not "${hello.service}"`);
    }
    if (this.closed) return;
    const labels = { ...hello.labels, version: hello.version };
    const record: ProxyRecord = {
      id: randomUUID(),
      service: hello.service,
      instanceId: hello.instanceId,
      version: hello.version,
      address: hello.address,
      inboundPort: hello.inboundPort,
      adminPort: hello.adminPort,
      connectedAt: Date.now(),
      certExpiry: Number(hello.certExpiryUnix) > 0 ? Number(hello.certExpiryUnix) * 1000 : undefined,
    };
    this.registration = this.deps.registry?.announce({
      service: hello.service,
      id: hello.instanceId,
      address: hello.address,
      port: hello.inboundPort,
      protocol: hello.protocol === 'grpc' ? 'grpc' : 'http',
      labels,
    }, !hello.notReady);
    this.lacked = lackedFeatures(hello.features ?? []);
    this.lackedKey = lackedKey(this.lacked);
    this.deps.proxies.add(record);
    this.record = record;
    // Response headers tell the sidecar its stream was accepted, even when no snapshot
    // follows (it already runs the newest, or the resync hold keeps its own), and why none
    // does while snapshots are held, for its /ready to say.
    const accepted = new grpc.Metadata();
    const held = this.deps.publisher.current().held;
    if (held !== undefined) accepted.set(SNAPSHOT_HELD_HEADER, held.replace(/[^\x20-\x7e]/g, '?'));
    this.call.sendMetadata(accepted);
    this.deps.logger.info({ service: record.service, instance: record.instanceId, lastVersion: hello.lastVersion || undefined }, 'sidecar connected');
    if (this.deps.trustDomains) this.sendCommand(TRUST_DOMAINS_COMMAND, JSON.stringify({ trustDomains: this.deps.trustDomains }));

    const current = this.deps.publisher.current();
    if (hello.lastVersion) {
      // It already runs a snapshot, one it ACKed (here or before a restart): listed as running
      // it, STALE until it takes the newest, also while the resync hold keeps that one from it.
      this.deps.proxies.ack(record.id, hello.lastVersion, Date.now());
      // If it is the newest, there is nothing to resend; it runs what it was sent of it.
      if (hello.lastVersion === current.version) {
        record.sentVersion = current.version;
        if (this.lackedKey !== '') this.runsWithout(record, this.variant(current).leftOut, current.version);
      }
    }
    this.lastVersion = hello.lastVersion || undefined;
    this.stopPublish = this.deps.publisher.onPublish((snapshot) => this.pushUnlessHeld(snapshot));
    this.pushUnlessHeld(current);
  }

  /**
   * Whether it keeps its own snapshot for the resync hold: right after a control-plane restart
   * the registry is still filling up, so a sidecar that already runs a snapshot keeps it until
   * then rather than get one with endpoints missing.
   */
  held(): boolean {
    return this.lastVersion !== undefined && !this.record?.sentVersion && Date.now() < this.deps.holdUntil();
  }

  private pushUnlessHeld(snapshot: PublishedSnapshot): void {
    if (!this.held()) this.push(snapshot);
  }

  private variant(snapshot: PublishedSnapshot): PushedVariant {
    return this.deps.variants.variant(snapshot, this.lacked, this.lackedKey);
  }

  /**
   * Records what it runs without in the snapshot it was sent, for the proxies view, and warns
   * when that changes, not on every push: what only a service's own instances enforce (a rate
   * limit) counts for those alone.
   */
  private runsWithout(record: ProxyRecord, leftOut: readonly LeftOut[], version: string): void {
    const without = runsWithoutAs(record.service, leftOut);
    record.runsWithout = without.length > 0 ? without : undefined;
    const key = without.join('\n');
    if (without.length === 0 || key === this.warnedOf) return;
    this.warnedOf = key;
    this.deps.logger.warn(
      { service: record.service, instance: record.instanceId, version, lacks: this.lacked, runsWithout: without },
      'sidecar predates snapshot features in use: it is sent the snapshot without them and runs without them until it is upgraded',
    );
  }

  private message(message: SidecarMessage): void {
    const record = this.record;
    if (!record) return;
    const now = Date.now();
    switch (message.msg) {
      case 'ack':
        this.deps.proxies.ack(record.id, message.ack!.version, now);
        this.deps.events?.configAnswered('ack');
        break;
      case 'nack':
        this.deps.proxies.nack(record.id, message.nack!.version, message.nack!.reason, now);
        this.deps.events?.configAnswered('nack');
        this.deps.logger.warn({ service: record.service, instance: record.instanceId, version: message.nack!.version, reason: message.nack!.reason }, 'sidecar rejected a snapshot');
        break;
      case 'cert':
        record.certExpiry = Number(message.cert!.expiryUnix) * 1000;
        record.bundleFingerprint = message.cert!.bundleFingerprint;
        record.rootFingerprint = message.cert!.rootFingerprint;
        // '' from a leaf without one, and from sidecars older than the field: none known.
        record.spiffeId = message.cert!.spiffeId || undefined;
        break;
      case 'telemetry':
        this.deps.onTelemetry?.(record, message.telemetry!.kind, message.telemetry!.json);
        break;
      case 'readiness':
        this.registration?.ready(!message.readiness!.notReady);
        break;
      default:
        break;
    }
  }

  private reject(err: Error): void {
    const rejected = err instanceof StreamRejected ? err : new StreamRejected(grpc.status.INTERNAL, err.message);
    this.deps.logger.warn({ peer: this.call.getPeer(), code: rejected.code, reason: rejected.message }, 'sidecar stream rejected');
    this.call.emit('error', { code: rejected.code, details: rejected.message });
  }

  private close(clean: boolean): void {
    if (this.closed) return;
    this.closed = true;
    this.stopPublish?.();
    this.registration?.end(clean);
    if (this.record) {
      this.deps.proxies.remove(this.record.id, clean);
      if (clean) this.deps.onGoodbye?.(this.record);
      this.deps.logger.info({ service: this.record.service, instance: this.record.instanceId, clean }, 'sidecar disconnected');
    }
    this.onClose(this);
  }
}

function helloProblem(hello: Hello): string | undefined {
  if (!serviceName.safeParse(hello.service).success) return `service "${hello.service}" is not a valid service name`;
  const id = instanceId.safeParse(hello.instanceId);
  if (!id.success) return `instance_id ${JSON.stringify(hello.instanceId)} ${id.error.issues[0]!.message}`;
  if (!subsetName.safeParse(hello.version).success) return `version "${hello.version}" is not a valid subset label`;
  if (!(hello.inboundPort >= 1 && hello.inboundPort <= 65535)) return `inbound_port ${hello.inboundPort} is not a port`;
  // The instance goes into every snapshot that lists it, so it is held to the endpoint schema
  // sidecars validate, as Consul's instances are (registry/consul-catalog.ts instancesOf): one
  // they refuse would have every sidecar refuse every snapshot while it stays announced.
  const checked = endpoint.safeParse({ address: hello.address, port: hello.inboundPort, labels: hello.labels });
  if (!checked.success) return checked.error.issues.map((i) => `${i.path.join('.')} ${i.message}`).join('; ');
  return undefined;
}
