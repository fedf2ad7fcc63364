/** What `skein sidecar` is started with (SPEC §3), after flags and SKEIN_* env vars are read. */
export interface Upstream {
  readonly service: string;
  readonly port: number;
}

/**
 * `--max-request-headers`: its default, as SPEC §8 has it, and its range. Above 128 KiB a head
 * (with the fields the sidecar adds) could outgrow what node:http2 takes from a peer: nghttp2
 * 1.61 refuses a header block of over 8 CONTINUATION frames (9 × 16 KiB, 144 KiB) by failing
 * the whole session, every stream of it. The mux (1 MiB frames) would carry more. Below 1 KiB
 * few real requests fit.
 */
export const REQUEST_HEAD_BYTES = { default: 64 * 1024, min: 1024, max: 128 * 1024 } as const;

/** `--access-log-format` (sidecar/telemetry/access-log.ts). */
export const ACCESS_LOG_FORMATS = ['json', 'text'] as const;
export type AccessLogFormat = (typeof ACCESS_LOG_FORMATS)[number];

export interface SidecarOptions {
  readonly service: string;
  readonly version: string;
  readonly appPort: number;
  readonly appProtocol: 'http' | 'grpc';
  readonly appHealthPath: string;
  readonly inboundPort: number;
  readonly outboundPort: number;
  readonly upstreams: readonly Upstream[];
  readonly adminPort: number;
  /** Address listeners bind to for inbound traffic; outbound and admin are always loopback. */
  readonly inboundHost: string;
  readonly controlPlane?: string;
  /** The bootstrap token as given; see bootstrapToken() for the value used. */
  readonly token?: string;
  readonly consul?: string;
  readonly config?: string;
  readonly certFile?: string;
  readonly keyFile?: string;
  readonly caFile?: string;
  /** With a static identity: other trust domains peers' identities may be in (a mesh moving to another one). */
  readonly trustDomainAliases?: readonly string[];
  readonly drainTimeoutMs: number;
  /** Largest request body let through (SPEC §8: 413 `bad-request` beyond it); 0 for no limit. */
  readonly maxRequestBodyBytes: number;
  /** Largest request head let through (SPEC §8: 431 `bad-request` beyond it), within REQUEST_HEAD_BYTES. */
  readonly maxRequestHeaderBytes: number;
  readonly advertiseAddress: string;
  /** Unique per process; registered in Consul and announced to the control plane. */
  readonly instanceId: string;
  /** `SKEIN_OTLP_ENDPOINT`, checked (otlp-endpoint.ts): spans are also posted there as OTLP/HTTP JSON. */
  readonly otlpEndpoint?: string;
  /** `--access-log`: `stdout`, `stderr` or a file; none when off. */
  readonly accessLog?: string;
  readonly accessLogFormat?: AccessLogFormat;
}

/**
 * The bootstrap token as sent in the CSR: `--token`/`SKEIN_TOKEN` without surrounding
 * whitespace (a Kubernetes Secret made from a file ends in a newline), none when blank.
 */
export function bootstrapToken(token: string | undefined): string | undefined {
  return token?.trim() || undefined;
}
