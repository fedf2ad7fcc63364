/**
 * Loads `skein/v1/mesh.proto` at runtime for both ends of the push stream, and types the
 * messages as @grpc/proto-loader decodes them (camelCase fields, int64 as strings, oneof
 * field name in `msg`). tsc does not copy the .proto into dist/, so the file is looked up
 * beside this module first and in the source tree second.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const CANDIDATES = ['./skein/v1/mesh.proto', '../../../common/proto/skein/v1/mesh.proto'];

export function meshProtoPath(): string {
  for (const rel of CANDIDATES) {
    const path = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(path)) return path;
  }
  throw new Error('skein: mesh.proto not found beside common/proto');
}

export interface Hello {
  service: string;
  instanceId: string;
  version: string;
  address: string;
  inboundPort: number;
  adminPort: number;
  protocol: string;
  token: string;
  lastVersion: string;
  certExpiryUnix: string;
  labels: Record<string, string>;
  /** Why the sidecar is not ready; '' when it is (decoded as '' when a sidecar does not say). */
  notReady?: string;
  /**
   * The snapshot features it understands (SNAPSHOT_FEATURES of its build); decoded as [] from a
   * sidecar older than the field, which understands none of them.
   */
  features?: string[];
}

export interface SidecarMessage {
  msg?: 'hello' | 'ack' | 'nack' | 'telemetry' | 'cert' | 'readiness';
  hello?: Hello;
  ack?: { version: string };
  nack?: { version: string; reason: string };
  telemetry?: { kind: string; json: string };
  /** `spiffeId` is decoded as '' from a sidecar that does not send it (one older than the field). */
  cert?: { expiryUnix: string; bundleFingerprint: string; rootFingerprint: string; spiffeId?: string };
  readiness?: { notReady: string };
}

/**
 * The largest message on the stream either end takes. grpc-js's default (4 MiB) is a snapshot
 * of a few thousand route rules: past it every sidecar's stream failed and reconnected in a
 * loop, while every write was answered as published.
 */
export const MAX_STREAM_MESSAGE_BYTES = 64 * 1024 * 1024;

/**
 * The longest a sidecar waits between attempts to reopen its stream. The control plane's
 * resync hold must outlast it, or a sidecar still backing off is missing from the registry
 * when the hold ends and its callers are pushed a snapshot without it.
 */
export const SIDECAR_RECONNECT_MAX_MS = 5_000;

/**
 * Response header of an accepted stream: why no snapshot follows yet (the control plane holds
 * snapshots until Consul's catalog is read), for the sidecar's /ready to say.
 */
export const SNAPSHOT_HELD_HEADER = 'skein-snapshot-held';

/**
 * The Command that tells a sidecar whose identities the mesh takes: `{"trustDomains": [...]}`,
 * the CA's trust domain then its aliases (a move to another --trust-domain). Sent on every
 * accepted stream before its first snapshot, so a sidecar knows them before it is ready.
 */
export const TRUST_DOMAINS_COMMAND = 'trust-domains';

export interface ControlMessage {
  msg?: 'snapshot' | 'command';
  /** The JSON comes either as `json` or gzipped in `jsonGzip`. */
  snapshot?: { version: string; json: string; jsonGzip?: Buffer };
  command?: { kind: string; json: string };
}

export interface SignRequest {
  csrPem: string;
  token: string;
}

export interface SignResponse {
  certPem: string;
  bundlePem: string;
  expiryUnix: string | number;
}

export interface MeshClient extends grpc.Client {
  Stream(options?: grpc.CallOptions): grpc.ClientDuplexStream<SidecarMessage, ControlMessage>;
  Sign(request: SignRequest, callback: grpc.requestCallback<SignResponse>): grpc.ClientUnaryCall;
  Sign(request: SignRequest, options: grpc.CallOptions, callback: grpc.requestCallback<SignResponse>): grpc.ClientUnaryCall;
}

export interface MeshProto {
  /** The service definition to pass to `server.addService`. */
  service: grpc.ServiceDefinition;
  Client: new (address: string, credentials: grpc.ChannelCredentials, options?: grpc.ChannelOptions) => MeshClient;
}

let cached: MeshProto | undefined;

export function loadMeshProto(): MeshProto {
  if (cached) return cached;
  const definition = protoLoader.loadSync(meshProtoPath(), { keepCase: false, longs: String, enums: String, defaults: true, oneofs: true });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as { skein: { v1: { Mesh: grpc.ServiceClientConstructor } } };
  const Mesh = pkg.skein.v1.Mesh;
  cached = { service: Mesh.service, Client: Mesh as unknown as MeshProto['Client'] };
  return cached;
}
