/**
 * The control plane's gRPC server (SPEC §5, `--grpc-port`): the Mesh service of
 * common/proto/skein/v1/mesh.proto. `Stream` runs one StreamSession per sidecar; `Sign`
 * is the CA's (control-plane/ca) and is plugged in by whoever builds the server.
 * Keepalive pings on both ends find dead peers within seconds even when no snapshot flows.
 */
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../../common/log.js';
import { loadMeshProto, MAX_STREAM_MESSAGE_BYTES, type ControlMessage, type SignRequest, type SignResponse } from '../../common/proto/mesh.js';
import type { StreamRegistry } from '../registry/stream-registry.js';
import type { SnapshotPublisher } from '../state/snapshots.js';
import type { ProxyRecord, ProxyTracker } from './proxies.js';
import { SnapshotVariants } from './snapshot-variants.js';
import { StreamSession, type Authenticate, type PushEvents, type StreamCall } from './session.js';

export type SignHandler = grpc.handleUnaryCall<SignRequest, SignResponse>;

export interface PushServerOptions {
  readonly publisher: SnapshotPublisher;
  readonly proxies: ProxyTracker;
  readonly registry?: StreamRegistry;
  readonly authenticate: Authenticate;
  readonly logger: Logger;
  readonly credentials: grpc.ServerCredentials;
  /** After a start, sidecars that already run a snapshot wait this long for the registry to refill. */
  readonly resyncHoldMs: number;
  /**
   * When the resync hold starts counting, when not at `listen`: Consul's catalog first read
   * (`Discovery.known`). A Consul that restarted with the control plane lists services only
   * as their sidecars register again, so the hold must outlast that, however long Consul took.
   */
  readonly holdFrom?: Promise<void>;
  readonly sign?: SignHandler;
  readonly onTelemetry?: (proxy: ProxyRecord, kind: string, json: string) => void;
  /** A sidecar said goodbye (it shut down): what it reported of its own state is gone with it. */
  readonly onGoodbye?: (proxy: ProxyRecord) => void;
  /** Pushes and ACK/NACK answers, for the control plane's /metrics. */
  readonly events?: PushEvents;
  readonly keepaliveMs?: number;
  readonly helloTimeoutMs?: number;
  /** The trust domains whose identities the mesh takes (the CA's, then its aliases), told to every sidecar. */
  readonly trustDomains?: readonly string[];
}

/** Pings every 10 s and gives up after 5 s without an answer (the sidecar does the same). */
export const KEEPALIVE_MS = 10_000;
const KEEPALIVE_TIMEOUT_MS = 5_000;

export class PushServer {
  private readonly server: grpc.Server;
  private readonly sessions = new Set<StreamSession>();
  private holdUntil: number;
  private holdTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly release: Promise<number>;
  private releaseNow!: (at: number) => void;

  constructor(private readonly options: PushServerOptions) {
    const keepalive = options.keepaliveMs ?? KEEPALIVE_MS;
    this.server = new grpc.Server({
      'grpc.keepalive_time_ms': keepalive,
      'grpc.keepalive_timeout_ms': Math.min(KEEPALIVE_TIMEOUT_MS, keepalive),
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.max_send_message_length': MAX_STREAM_MESSAGE_BYTES,
      'grpc.max_receive_message_length': MAX_STREAM_MESSAGE_BYTES,
    });
    // Until `holdFrom` resolves the hold lasts, however long that takes.
    this.holdUntil = options.resyncHoldMs <= 0 ? 0 : options.holdFrom ? Number.POSITIVE_INFINITY : Date.now() + options.resyncHoldMs;
    this.release = new Promise((resolve) => (this.releaseNow = resolve));
    if (options.resyncHoldMs <= 0) this.releaseNow(0);
    const sign: SignHandler =
      options.sign ?? ((_call, callback) => callback({ code: grpc.status.UNIMPLEMENTED, details: 'this control plane has no CA' }));
    this.server.addService(withSharedEncoding(loadMeshProto().service), {
      Stream: (call: StreamCall) => this.openSession(call),
      Sign: sign,
    });
  }

  /** Binds and resolves with the bound port (pass 0 for any free port). */
  async listen(host: string, port: number): Promise<number> {
    const bound = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync(`${host}:${port}`, this.options.credentials, (err, p) => (err ? reject(err) : resolve(p))),
    );
    if (this.options.resyncHoldMs > 0) {
      if (this.options.holdFrom) void this.options.holdFrom.then(() => this.startHold());
      else this.startHold();
    }
    return bound;
  }

  private startHold(): void {
    if (this.closed) return;
    const ms = this.options.resyncHoldMs;
    if (this.options.holdFrom) this.holdUntil = Date.now() + ms;
    this.holdTimer = setTimeout(() => {
      const current = this.options.publisher.current();
      for (const session of this.sessions) session.push(current);
      this.releaseNow(Date.now());
    }, ms);
  }

  /**
   * Resolves once the resync hold is over and the sidecars it held were sent the newest snapshot,
   * with that instant (0 when there is no hold): until then, a snapshot published after a
   * restart reaches only sidecars that connect without one.
   */
  released(): Promise<number> {
    return this.release;
  }

  /**
   * While the resync hold keeps a connected sidecar's snapshot, the instant it ends (ms since
   * epoch): a snapshot published meanwhile reaches such a sidecar only then. Undefined when it
   * holds none (over, or no sidecar reconnected running a snapshot), so a fresh start's writes
   * are not answered with a hold that delays nobody.
   */
  holdEnds(): number | undefined {
    const until = this.resyncEnds();
    return until !== undefined && [...this.sessions].some((s) => s.held()) ? until : undefined;
  }

  /**
   * While the resync hold lasts, the instant it ends (ms since epoch), whether or not it keeps a
   * sidecar's snapshot now: until then sidecars that ran one before the start may still
   * reconnect, so the registry may lack their instances.
   */
  resyncEnds(): number | undefined {
    // Not counting yet: every snapshot is held meanwhile (Discovery.unknown), which writes' answers say instead.
    if (this.holdUntil === Number.POSITIVE_INFINITY) return undefined;
    return Date.now() < this.holdUntil ? this.holdUntil : undefined;
  }

  /** Sends a Command (tap-start, renew-cert, …) to every connected sidecar `select` picks. */
  sendCommand(select: (proxy: ProxyRecord) => boolean, kind: string, json: string): number {
    let sent = 0;
    for (const session of this.sessions) {
      if (session.record && select(session.record)) {
        session.sendCommand(kind, json);
        sent++;
      }
    }
    return sent;
  }

  /** Stops accepting streams and ends the open ones, waiting at most `graceMs`. */
  async close(graceMs = 1_000): Promise<void> {
    this.closed = true;
    if (this.holdTimer) clearTimeout(this.holdTimer);
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      this.server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
      for (const session of this.sessions) session.end();
    });
  }

  /** One message per snapshot and set of features lacked, gzipped once, shared by every stream (see withSharedEncoding). */
  private readonly variants = new SnapshotVariants();

  private openSession(call: StreamCall): void {
    const session = new StreamSession(
      call,
      {
        publisher: this.options.publisher,
        proxies: this.options.proxies,
        registry: this.options.registry,
        authenticate: this.options.authenticate,
        logger: this.options.logger,
        holdUntil: () => this.holdUntil,
        variants: this.variants,
        helloTimeoutMs: this.options.helloTimeoutMs ?? 10_000,
        onTelemetry: this.options.onTelemetry,
        onGoodbye: this.options.onGoodbye,
        events: this.options.events,
        trustDomains: this.options.trustDomains,
      },
      (s) => this.sessions.delete(s),
    );
    this.sessions.add(session);
  }
}

/**
 * The service definition with the Stream responses' serializer memoised per message
 * object: a snapshot pushed to a thousand sidecars is protobuf-encoded once, not a
 * thousand times.
 */
function withSharedEncoding(service: grpc.ServiceDefinition): grpc.ServiceDefinition {
  const stream = service.Stream!;
  const cache = new WeakMap<object, Buffer>();
  const serialize = (message: ControlMessage): Buffer => {
    let bytes = cache.get(message);
    if (!bytes) {
      bytes = stream.responseSerialize(message);
      cache.set(message, bytes);
    }
    return bytes;
  };
  return { ...service, Stream: { ...stream, responseSerialize: serialize } };
}
