import { ACCESS_LOG_FORMATS } from '../sidecar/options.js';
import { InjectError } from './errors.js';

/**
 * `skein.io/access-log` and `--access-log`: the injected sidecar writes its access log to
 * stdout, where `kubectl logs` and `docker compose logs` collect it, in one of the formats
 * `skein sidecar --access-log-format` takes; or writes none.
 */
export const ACCESS_LOG_SETTINGS = [...ACCESS_LOG_FORMATS, 'off'] as const;
export type AccessLogSetting = (typeof ACCESS_LOG_SETTINGS)[number];

/** What `skein inject` and the injection webhook add, and where the injected sidecar finds the mesh. */
export interface InjectOptions {
  /** Image of the sidecar (and of the transparent-mode init container, which needs iptables in it). */
  readonly image: string;
  /** gRPC address of the control plane as seen from the workload (SKEIN_CONTROL_PLANE). */
  readonly controlPlane: string;
  /** Consul agent URL for the sidecar (CONSUL_HTTP_ADDR); discovery through the control plane when absent. */
  readonly consul?: string;
  /** Redirect outbound HTTP to the sidecar with iptables (per workload also `skein.io/transparent: "true"`). */
  readonly transparent: boolean;
  /** Destination ports the transparent mode redirects (outbound HTTP). */
  readonly redirectPorts: readonly number[];
  readonly inboundPort: number;
  readonly outboundPort: number;
  readonly adminPort: number;
  /** Longest drain on shutdown; the termination grace period is raised to fit it. */
  readonly drainTimeoutSeconds: number;
  /** Kubernetes: ConfigMap holding the control plane's trust bundle under key `ca.crt`. */
  readonly caConfigMap: string;
  /** Compose: a volume (or host directory) holding the control plane's trust bundle as `ca.crt`, mounted read-only. */
  readonly composeCaVolume: string;
  /** The sidecars' access log (per workload also `skein.io/access-log`). */
  readonly accessLog: AccessLogSetting;
}

export const DEFAULT_INJECT_OPTIONS: InjectOptions = {
  image: 'skein:0.1.0',
  controlPlane: 'skein-control-plane.skein-system.svc:15012',
  transparent: false,
  redirectPorts: [80],
  inboundPort: 15443,
  outboundPort: 15001,
  adminPort: 15000,
  drainTimeoutSeconds: 10,
  caConfigMap: 'skein-ca',
  composeCaVolume: 'skein-ca',
  accessLog: 'off',
};

/** Compose: whether a volume source (`--compose-ca-volume`) names a volume rather than a host directory (`./ca`, `/srv/ca`, `~/ca`). */
export function isNamedVolume(source: string): boolean {
  return !source.includes('/') && !source.startsWith('.') && !source.startsWith('~');
}

/** The uid the sidecar runs as; transparent mode lets this uid's traffic out unredirected. */
export const SIDECAR_UID = 1337;
export const SIDECAR_CONTAINER = 'skein-sidecar';
export const INIT_CONTAINER = 'skein-init';
export const BOOTSTRAP_VOLUME = 'skein-bootstrap';
/** Where the bootstrap volume (token and trust bundle) is mounted in the sidecar. */
export const BOOTSTRAP_DIR = '/var/run/skein';

/** The Secret holding a service's bootstrap token (key `token`), e.g. from `skein token create orders`. */
export function tokenSecretName(service: string): string {
  return `skein-token-${service}`;
}

/** Annotations (and, in Compose, labels) a workload can carry to steer injection. */
export const ANNOTATIONS = {
  inject: 'skein.io/inject',
  service: 'skein.io/service',
  appPort: 'skein.io/app-port',
  appProtocol: 'skein.io/app-protocol',
  appHealthPath: 'skein.io/app-health-path',
  transparent: 'skein.io/transparent',
  redirectPorts: 'skein.io/redirect-ports',
  accessLog: 'skein.io/access-log',
} as const;

/**
 * A "true"/"false" setting (skein.io/inject, skein.io/transparent). Anything else (a "False",
 * a "no", a typo) is refused: taken as unset, an opt-out would quietly inject, and a
 * transparent "yes" would quietly stay off.
 */
export function switchValue(value: string, document: string, field: string): boolean {
  if (value !== 'true' && value !== 'false') throw new InjectError('invalid-field', document, field, `expected "true" or "false", got "${value}"`);
  return value === 'true';
}

/**
 * A `skein.io/access-log` setting. Anything else (a "JSON", a "yes", a "stdout") is refused:
 * taken as unset, the access log someone asked for would quietly not be written.
 */
export function accessLogValue(value: string, document: string, field: string): AccessLogSetting {
  const setting = ACCESS_LOG_SETTINGS.find((s) => s === value);
  if (setting === undefined) throw new InjectError('invalid-field', document, field, `expected one of ${ACCESS_LOG_SETTINGS.map((s) => `"${s}"`).join(', ')}, got "${value}"`);
  return setting;
}

/**
 * The sidecar shares the app's network namespace (pod or Compose service), so the app cannot use the sidecar's ports.
 * A range (`last` above `port`, e.g. Compose "15000-15010") is checked whole, without listing its ports.
 */
export function assertNotSidecarPort(port: number, options: InjectOptions, document: string, field: string, last = port): void {
  const reserved = [['admin', options.adminPort], ['outbound', options.outboundPort], ['inbound', options.inboundPort]] as const;
  // The lowest sidecar port in the range is named.
  const [role, used] = reserved.filter(([, p]) => p >= port && p <= last).sort((a, b) => a[1] - b[1])[0] ?? [];
  if (used === undefined) return;
  const what = last === port ? `port ${used} is` : `the port range ${port}-${last} includes port ${used}, which is`;
  throw new InjectError('name-conflict', document, field, `${what} used by the sidecar (its ${role} port)`);
}
