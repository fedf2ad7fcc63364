/** What `skein control-plane` is started with (SPEC §5), after flags and env vars are read. */
import type { InjectOptions } from '../inject/options.js';
import type { StoreKind } from './store/open.js';

/** The default of `--consul-sweep`: a catalog of 200 services is read at 3 services a second. */
export const CONSUL_SWEEP_MS = 60_000;

export interface ControlPlaneOptions {
  readonly dataDir: string;
  readonly grpcHost: string;
  readonly grpcPort: number;
  readonly httpHost: string;
  readonly httpPort: number;
  readonly consul?: string;
  /** With `consul`: every service in the catalog is read again within this period (ConsulCatalog's sweep). */
  readonly consulSweepMs: number;
  readonly store: StoreKind;
  readonly trustDomain: string;
  /** Trust domains the mesh was in before (`--trust-domain-alias`): their identities are still taken while sidecars move. */
  readonly trustDomainAliases: readonly string[];
  /** Operator-supplied CA root (PEM), so several replicas sign with one root; imported into the data dir. */
  readonly caCertFile?: string;
  readonly caKeyFile?: string;
  /** Lifetime of the leaf certificates the CA issues (24 h by default; minutes or seconds for tests). */
  readonly certTtlMs?: number;
  /** Extra names or addresses for the gRPC server certificate. */
  readonly tlsSans: readonly string[];
  /** `SKEIN_ADMIN_TOKEN`, which wins over the data dir's admin-token file. */
  readonly adminToken?: string;
  /** How long an instance whose stream broke stays in the built-in registry, and a root rotation waits for sidecars to come back. */
  readonly registryGraceMs: number;
  /** After a start, how long sidecars that already run a snapshot keep it while the registry refills. */
  readonly resyncHoldMs: number;
  /** How long to gather changes into one snapshot. */
  readonly coalesceMs: number;
  readonly maxBodyBytes: number;
  /** Keepalive ping interval on sidecar streams; an unanswered ping ends the stream. */
  readonly keepaliveMs: number;
  /** TLS port of the Kubernetes injection webhook (POST /api/v1/inject); no webhook when absent. */
  readonly webhookPort?: number;
  /** What the webhook injects: sidecar image, control-plane address as workloads see it, Consul. */
  readonly inject?: InjectOptions;
}
