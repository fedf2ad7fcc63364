/**
 * The demo shop as the orchestrator starts it: every instance (an app process and its own
 * sidecar), and the mesh config applied before any sidecar connects.
 */
import type { PolicyInput, RoutesInput } from '../control-plane/state/resources.js';
import type { SnapshotInput } from '../common/config/schema.js';

export interface InstanceSpec {
  /** Unique in the demo; also the sidecar's --instance-id and the log file names. */
  readonly id: string;
  readonly service: string;
  /** Subset label (sidecar --version). */
  readonly version: string;
  readonly protocol: 'http' | 'grpc';
  /** Flags for `demo-services/run.js <service>` beyond --port and --data-dir. */
  readonly appArgs: readonly string[];
  /** The public entry: its app listens on the gateway port. */
  readonly public?: boolean;
  /** Start only once this instance's app is up (instances of one service share its database, whose schema the first one creates). */
  readonly after?: string;
}

export const INSTANCES: readonly InstanceSpec[] = [
  { id: 'gateway', service: 'gateway', version: 'v1', protocol: 'http', appArgs: [], public: true },
  { id: 'users', service: 'users', version: 'v1', protocol: 'http', appArgs: [] },
  { id: 'catalog-v1', service: 'catalog', version: 'v1', protocol: 'grpc', appArgs: ['--version', 'v1'] },
  { id: 'catalog-v2', service: 'catalog', version: 'v2', protocol: 'grpc', appArgs: ['--version', 'v2'] },
  { id: 'inventory', service: 'inventory', version: 'v1', protocol: 'http', appArgs: [] },
  // Events reach notifications within ~2 s of it coming back (the default backoff cap is 10 s).
  { id: 'orders', service: 'orders', version: 'v1', protocol: 'http', appArgs: ['--outbox-max-backoff-ms', '2000', '--outbox-poll-ms', '500'] },
  // Two replicas over one database, as a payments service would run: a charge retried on the
  // other replica finds its Idempotency-Key, and a refund finds the charge wherever it was made.
  { id: 'payments-1', service: 'payments', version: 'v1', protocol: 'http', appArgs: ['--replica', 'payments-1'] },
  { id: 'payments-2', service: 'payments', version: 'v1', protocol: 'http', appArgs: ['--replica', 'payments-2'], after: 'payments-1' },
  { id: 'notifications', service: 'notifications', version: 'v1', protocol: 'http', appArgs: [] },
];

/** Who may call whom; everything else is denied. */
export const ALLOWED_CALLS: readonly (readonly [string, string])[] = [
  ['gateway', 'users'],
  ['gateway', 'catalog'],
  ['gateway', 'inventory'],
  ['gateway', 'orders'],
  // GET /api/notifications lists a user's notifications.
  ['gateway', 'notifications'],
  ['orders', 'inventory'],
  ['orders', 'payments'],
  ['orders', 'notifications'],
];

export const INTENTIONS: NonNullable<SnapshotInput['intentions']> = {
  defaultAction: 'deny',
  rules: ALLOWED_CALLS.map(([source, destination]) => ({ source, destination, action: 'allow' as const })),
};

/**
 * Every service is declared, so while one has no instance (say notifications is down) the
 * mesh still knows it and answers 503 no-healthy-endpoints, which callers retry, rather than
 * 404 no-route, which reads as a refusal.
 */
export const POLICIES: Readonly<Record<string, PolicyInput>> = {
  gateway: {},
  users: {},
  catalog: { protocol: 'grpc', subsets: { v1: { version: 'v1' }, v2: { version: 'v2' } } },
  inventory: {},
  // The saga behind POST /orders calls inventory and payments (with their retries) in turn,
  // so one try may take longer than the default 1 s.
  orders: { timeout: '15s', retries: { perTryTimeout: '15s' } },
  payments: {
    timeout: '5s',
    // Every request about one charge (the charge, a replay of it, its refund) carries the
    // order's Idempotency-Key, and the same key goes to the same replica first, from every
    // sidecar: one payment's story is in one replica's log, where a replica keeping a key's
    // in-flight state in memory would find it (these keep none). Keys spread over both
    // replicas, and a retry goes to the key's ring neighbour, which the shared database makes safe.
    lb: 'ring-hash',
    hashOn: { header: 'idempotency-key' },
    // Opens after a handful of failed charges, and tries again 5 s later.
    circuitBreaker: { errorThresholdPercentage: 50, volumeThreshold: 5, rollingWindow: '10s', resetTimeout: '5s' },
    // A dead replica's keys would each pay a failed first try: ejecting it after two straight
    // failures sends them to its ring neighbour at once.
    outlierDetection: { consecutiveErrors: 2, baseEjectionTime: '10s', maxEjectionPercent: 50 },
  },
  notifications: {},
};

export const ROUTES: Readonly<Record<string, RoutesInput>> = {
  catalog: [{ name: 'canary', match: { pathPrefix: '/' }, split: { v1: 100, v2: 0 } }],
  // Charges and refunds carry an Idempotency-Key and both replicas share one database, so a
  // POST that reached a replica which then died may be tried again on the other one.
  payments: [{ name: 'all', match: { pathPrefix: '/' }, retryNonIdempotent: true }],
};

export function instance(id: string): InstanceSpec {
  const spec = INSTANCES.find((i) => i.id === id);
  if (!spec) throw new Error(`no instance ${id} in the demo (${INSTANCES.map((i) => i.id).join(', ')})`);
  return spec;
}
