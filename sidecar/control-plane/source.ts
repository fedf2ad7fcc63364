/**
 * The sidecar's end of the push stream (SPEC §5): a ConfigSource that connects to the
 * control plane over TLS, says Hello (who this instance is and which snapshot it runs),
 * applies every snapshot it is sent and answers ACK, or NACK with the reason when `apply`
 * refuses one (the sidecar keeps its last good snapshot). When the stream breaks it
 * reconnects with exponential backoff and full jitter, resuming from the snapshot it runs;
 * the control plane being down never stops the sidecar from serving (static stability).
 * While the sidecar needs the control plane soon (its certificate expired or is due for
 * renewal), reconnect attempts are at most a second apart, and `onConnected` lets it renew
 * the moment the stream is back.
 */
import * as grpc from '@grpc/grpc-js';
import { gunzipSync } from 'node:zlib';
import { SNAPSHOT_FEATURES } from '../../common/config/snapshot-features.js';
import type { Logger } from '../../common/log.js';
import { loadMeshProto, MAX_STREAM_MESSAGE_BYTES, SIDECAR_RECONNECT_MAX_MS, SNAPSHOT_HELD_HEADER, type ControlMessage, type Hello, type MeshClient, type SidecarMessage } from '../../common/proto/mesh.js';
import type { ConfigSource } from '../config-source.js';
import type { IdentityProvider } from '../identity/provider.js';
import { backoffDelay } from '../../common/backoff.js';
import { controlPlaneTls, type ControlPlaneTls } from './channel.js';

export type Announcement = Omit<Hello, 'token' | 'lastVersion' | 'certExpiryUnix' | 'notReady' | 'features'>;

export interface ControlPlaneSourceOptions {
  /** HOST:PORT of the control plane's gRPC port. */
  readonly address: string;
  /** Trust bundle for the control plane's certificate (--ca-file); re-read on every connect. */
  readonly caFile?: string;
  readonly token?: string;
  readonly announce: Announcement;
  /** Once it has a certificate, the sidecar presents it as client certificate and trusts its bundle too. */
  readonly identity?: IdentityProvider;
  readonly logger: Logger;
  readonly backoff?: { readonly baseMs: number; readonly maxMs: number };
  /** The jitter's random source (tests pin it). */
  readonly random?: () => number;
  /** Ping interval (default 10 s); a ping unanswered for min(5 s, interval) ends the stream. */
  readonly keepaliveMs?: number;
  /** Commands (tap-start, renew-cert, …) sent down the stream. */
  readonly onCommand?: (kind: string, json: string) => void;
  /** Called each time the control plane accepts this sidecar's Hello: the stream is up (again). */
  readonly onConnected?: () => void;
  /**
   * True while the sidecar needs the control plane soon; reconnect backoff is then capped at
   * `URGENT_BACKOFF_MAX_MS`, unless the control plane refused the stream (e.g. an expired
   * certificate and an expired token).
   */
  readonly urgent?: () => boolean;
}

type Stream = grpc.ClientDuplexStream<SidecarMessage, ControlMessage>;

const DEFAULT_BACKOFF = { baseMs: 250, maxMs: SIDECAR_RECONNECT_MAX_MS };
/**
 * The longest reconnect wait while `urgent()` holds (an expired or due certificate): once the
 * control plane is back, every such sidecar is on it within a second, not five.
 */
export const URGENT_BACKOFF_MAX_MS = 1_000;
/** A stream that stayed up this long counts as a success: the next failure starts backoff over. */
const STABLE_MS = 10_000;
/**
 * Messages queued on the push stream (not yet taken by HTTP/2) beyond which telemetry is
 * dropped: a span batch is at most 128 spans (~70 KB), so this bounds the queue to a few MB.
 */
const TELEMETRY_MAX_QUEUED = 64;

export class ControlPlaneSource implements ConfigSource {
  readonly authored = false;
  private version: string | undefined;
  private client: MeshClient | undefined;
  private stream: Stream | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private attempt = 0;
  private closed = false;
  private state: string;
  private apply: ((raw: unknown) => void) | undefined;
  private refused: ((reason: string) => void) | undefined;
  private certStatus: NonNullable<SidecarMessage['cert']> | undefined;
  /** The latest readiness reported (reasons joined, '' when ready); undefined until the first report. */
  private notReady: string | undefined;

  constructor(private readonly options: ControlPlaneSourceOptions) {
    this.state = `waiting for control plane at ${options.address}`;
  }

  get hasSnapshot(): boolean {
    return this.version !== undefined;
  }

  /** The snapshot version in force, if any. */
  get currentVersion(): string | undefined {
    return this.version;
  }

  get status(): string {
    return this.state;
  }

  /** `refused` may be left out by a caller that counts nothing (the tests' stand-in sidecars). */
  async start(apply: (raw: unknown) => void, refused?: (reason: string) => void): Promise<void> {
    this.apply = apply;
    this.refused = refused;
    this.connect();
  }

  /** Reports the certificate in use (CertStatus) now if connected, and after every Hello. */
  sendCertStatus(cert: NonNullable<SidecarMessage['cert']>): void {
    this.certStatus = cert;
    this.stream?.write({ cert });
  }

  /**
   * Reports readiness (`/ready`'s reasons, empty when ready) now if connected, and in every
   * Hello: the built-in registry keeps a not-ready instance out of the endpoints.
   */
  reportReadiness(reasons: readonly string[]): void {
    const notReady = reasons.join('; ');
    if (notReady === this.notReady) return;
    this.notReady = notReady;
    this.stream?.write({ readiness: { notReady } });
  }

  /**
   * Sends telemetry up the stream when connected and not backed up; dropped otherwise (it is
   * best effort). A control plane that reads slower than the sidecars send (busy, or a stream
   * held up by flow control) must not make a sidecar queue spans and tap rows without bound.
   */
  sendTelemetry(kind: string, json: string): boolean {
    const stream = this.stream;
    if (stream === undefined || stream.writableLength >= TELEMETRY_MAX_QUEUED) return false;
    stream.write({ telemetry: { kind, json } });
    return true;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    const stream = this.stream;
    this.stream = undefined;
    if (stream) {
      // Half-close is the goodbye: the control plane withdraws this instance at once.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1_000);
        stream.on('status', () => {
          clearTimeout(timer);
          resolve();
        });
        stream.on('error', () => undefined);
        stream.end();
      });
    }
    this.client?.close();
  }

  private connect(): void {
    if (this.closed) return;
    this.credentials()
      .then((credentials) => this.open(credentials))
      .catch((err: Error) => this.retry(err.message));
  }

  private open(tls: ControlPlaneTls): void {
    if (this.closed) return;
    this.client?.close();
    const { Client } = loadMeshProto();
    const keepalive = this.options.keepaliveMs ?? 10_000;
    this.client = new Client(this.options.address, tls.credentials, {
      ...tls.channelOptions,
      'grpc.keepalive_time_ms': keepalive,
      'grpc.keepalive_timeout_ms': Math.min(5_000, keepalive),
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.max_receive_message_length': MAX_STREAM_MESSAGE_BYTES,
    });
    const stream = this.client.Stream();
    this.attach(stream);
    const identity = this.options.identity?.current();
    stream.write({
      hello: {
        ...this.options.announce,
        token: this.options.token ?? '',
        lastVersion: this.version ?? '',
        certExpiryUnix: identity ? String(Math.floor(identity.notAfter.getTime() / 1000)) : '0',
        notReady: this.notReady ?? '',
        features: [...SNAPSHOT_FEATURES],
      },
    });
    if (this.certStatus) stream.write({ cert: this.certStatus });
  }

  private credentials(): Promise<ControlPlaneTls> {
    return controlPlaneTls(this.options.address, this.options.caFile, this.options.identity?.current());
  }

  private attach(stream: Stream): void {
    this.stream = stream;
    const openedAt = Date.now();
    let ended = false;
    const end = (why: string, refused = false) => {
      if (ended) return;
      ended = true;
      if (this.stream === stream) this.stream = undefined;
      if (Date.now() - openedAt >= STABLE_MS) this.attempt = 0;
      this.retry(why, refused);
    };
    // The control plane answers a Hello it accepts with response headers: the stream is up
    // even if no snapshot follows because the one this sidecar runs is still the newest.
    stream.on('metadata', (metadata: grpc.Metadata) => {
      const held = metadata.get(SNAPSHOT_HELD_HEADER)[0];
      if (this.version) this.state = this.connectedState();
      else if (held !== undefined) this.state = `connected to control plane at ${this.options.address}; waiting for a first snapshot, which it holds: ${String(held)}`;
      this.options.onConnected?.();
    });
    stream.on('data', (message: ControlMessage) => {
      this.attempt = 0;
      if (message.msg === 'snapshot' && message.snapshot) this.receive(stream, message.snapshot);
      else if (message.msg === 'command' && message.command) this.options.onCommand?.(message.command.kind, message.command.json);
    });
    stream.on('error', (err: grpc.ServiceError) => end(describe(err), err.code === grpc.status.UNAUTHENTICATED || err.code === grpc.status.PERMISSION_DENIED));
    stream.on('end', () => end('the control plane ended the stream'));
  }

  private receive(stream: Stream, snapshot: NonNullable<ControlMessage['snapshot']>): void {
    const version = snapshot.version;
    try {
      let raw: unknown;
      try {
        raw = JSON.parse(snapshot.jsonGzip?.length ? gunzipSync(snapshot.jsonGzip).toString('utf8') : snapshot.json);
      } catch (err) {
        // Never reaches `apply`, which counts what it refuses: a NACK all the same.
        const reason = `snapshot is not valid (gzipped) JSON: ${(err as Error).message}`;
        this.refused?.(reason);
        throw new Error(reason);
      }
      this.apply!(raw);
    } catch (err) {
      const reason = (err as Error).message;
      stream.write({ nack: { version, reason } });
      this.options.logger.warn({ version, reason, keeping: this.version }, 'rejected a snapshot from the control plane; keeping the last good one');
      return;
    }
    this.version = version;
    this.state = this.connectedState();
    stream.write({ ack: { version } });
    this.options.logger.info({ version }, 'applied snapshot from the control plane');
  }

  private connectedState(): string {
    return `connected to control plane at ${this.options.address}; snapshot ${this.version}`;
  }

  /** `refused`: the control plane answered and turned this sidecar away, so hurrying back would not help. */
  private retry(why: string, refused = false): void {
    if (this.closed) return;
    const { baseMs, maxMs } = this.options.backoff ?? DEFAULT_BACKOFF;
    const urgent = !refused && this.options.urgent?.() === true;
    const delay = backoffDelay(this.attempt++, baseMs, urgent ? Math.min(maxMs, URGENT_BACKOFF_MAX_MS) : maxMs, this.options.random);
    this.state = this.version
      ? `control plane at ${this.options.address} unreachable (${why}); serving snapshot ${this.version}, retrying`
      : `waiting for control plane at ${this.options.address} (${why})`;
    this.options.logger.warn({ controlPlane: this.options.address, reason: why, retryInMs: Math.round(delay), snapshot: this.version }, 'control plane stream down; reconnecting');
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }
}

function describe(err: grpc.ServiceError): string {
  const details = err.details || err.message;
  return `${grpc.status[err.code] ?? err.code}: ${details}`;
}
