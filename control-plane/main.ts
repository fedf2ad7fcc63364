/**
 * `skein control-plane`: the store and the registry feed the snapshot publisher; the push
 * server streams its snapshots to sidecars over TLS with a certificate from the control
 * plane's CA; the admin API reads and writes the store. This file only wires them.
 */
import type { Server } from 'node:http';
import { hostPort } from '../common/net/host-port.js';
import { hostname } from 'node:os';
import { makeDataDir } from './data-dir.js';
import { Registry } from 'prom-client';
import { createLogger, type Logger } from '../common/log.js';
import { SIDECAR_RECONNECT_MAX_MS } from '../common/proto/mesh.js';
import { CertificateAuthority } from './ca/authority.js';
import { ControlPlaneTls, localHostNames } from './ca/server-tls.js';
import { createSignHandler } from './ca/sign-service.js';
import { registerCaRoutes } from './ca/admin-routes.js';
import { RootRotation } from './ca/rotation.js';
import { SignStats } from './ca/sign-stats.js';
import { resolveAdminToken } from './admin-token.js';
import { lockDataDir } from './data-dir-lock.js';
import { registerConfigRoutes } from './admin-api/config-routes.js';
import { registerApplyRoutes } from './admin-api/apply-routes.js';
import { registerExplainRoutes } from './admin-api/explain-routes.js';
import { registerMetaRoutes } from './admin-api/openapi.js';
import { registerProxyRoutes } from './admin-api/proxies-routes.js';
import { Router } from './admin-api/router.js';
import { createAdminServer } from './admin-api/server.js';
import { registerServiceRoutes } from './admin-api/services-routes.js';
import { registerTokenRoutes } from './admin-api/tokens-routes.js';
import type { ControlPlaneOptions } from './options.js';
import { streamAuthenticator } from './push/authenticate.js';
import { ProxyTracker } from './push/proxies.js';
import { PushServer } from './push/server.js';
import { StreamRegistry } from './registry/stream-registry.js';
import { ConsulCatalog } from './registry/consul-catalog.js';
import type { Discovery } from './registry/discovery.js';
import { connectConsul } from '../common/consul/client.js';
import { MeshConfig } from './state/mesh-config.js';
import { SnapshotPublisher } from './state/snapshots.js';
import { ConsulLease, SoleLease, type Lease } from './store/lease.js';
import { openStore } from './store/open.js';
import type { ConfigStore } from './store/store.js';
import { checkAll } from './store/stored-entries.js';
import { BootstrapTokens } from './tokens.js';
import { DEFAULT_INJECT_OPTIONS } from '../inject/options.js';
import { startCaWebhook } from '../inject/webhook-tls.js';
import { registerInjectRoute } from '../inject/admin-route.js';
import { Observability } from './observability/observability.js';
import { registerObservabilityRoutes } from './observability/routes.js';
import { registerDashboardRoutes } from './dashboard/routes.js';
import { CanaryController } from './canary/controller.js';
import { publishedSplit } from './canary/publish-split.js';
import { registerCanaryRoutes } from './canary/routes.js';
import { ControlPlaneMetrics } from './metrics/metrics.js';
import { registerMetricsRoute } from './metrics/routes.js';
import { syncState } from './push/proxies.js';

export interface RunningControlPlane {
  readonly grpcPort: number;
  readonly httpPort: number;
  /** The injection webhook's TLS port, when --webhook-port was given. */
  readonly webhookPort?: number;
  readonly adminToken: string;
  readonly router: Router;
  readonly store: ConfigStore;
  readonly ca: CertificateAuthority;
  readonly tokens: BootstrapTokens;
  readonly push: PushServer;
  close(): Promise<void>;
}

const VERSION = '0.1.0';

export async function startControlPlane(options: ControlPlaneOptions, logger: Logger): Promise<RunningControlPlane> {
  await makeDataDir(options.dataDir);
  // Taken before anything in the data dir is read or written, so a refused start touches nothing.
  const lock = lockDataDir(options.dataDir);
  try {
    const running = await startLocked(options, logger);
    return {
      ...running,
      async close() {
        try {
          await running.close();
        } finally {
          lock.release();
        }
      },
    };
  } catch (err) {
    lock.release();
    throw err;
  }
}

async function startLocked(options: ControlPlaneOptions, logger: Logger): Promise<RunningControlPlane> {
  const consul = options.consul ? connectConsul(options.consul) : undefined;
  const store = await openStore({ kind: options.store, dataDir: options.dataDir, consul, logger });
  // openStore refused a Consul store without --consul.
  const lease: Lease = options.store === 'consul' ? new ConsulLease(consul!, logger) : new SoleLease();
  const ca = await CertificateAuthority.open({
    dataDir: options.dataDir, trustDomain: options.trustDomain, trustDomainAliases: options.trustDomainAliases, caCertFile: options.caCertFile, caKeyFile: options.caKeyFile, leafLifetimeMs: options.certTtlMs,
  });
  const admin = await resolveAdminToken(options.dataDir, options.adminToken);
  if (admin.blankEnv) process.stderr.write(`skein: SKEIN_ADMIN_TOKEN is set but blank: ignored, the admin token is the one in ${admin.file}\n`);
  if (admin.generated) {
    const why = admin.replacedEmpty ? ', replacing the empty file' : '';
    process.stderr.write(`skein: generated the admin token (saved in ${admin.file}${why}, shown only now):\n${admin.token}\n`);
  }

  // With --consul the catalog is the registry: sidecars' Hellos no longer add instances.
  const registry = consul ? undefined : new StreamRegistry(options.registryGraceMs);
  const discovery: Discovery = consul ? new ConsulCatalog(consul, logger, { sweepMs: options.consulSweepMs }) : registry!;
  // The push server is built below; writes ask for its hold only once the admin API listens.
  // The built-in registry refills as sidecars reconnect within the hold; Consul's catalog is
  // whole once read (its gap is `unknown()`), so refusals then are final.
  const config = new MeshConfig(store, discovery, registry ? { resyncEnds: (): number | undefined => push.resyncEnds() } : undefined);
  const publisher = new SnapshotPublisher(config, store, discovery, { coalesceMs: options.coalesceMs, logger });
  if (discovery instanceof ConsulCatalog) await discovery.synced(5_000);
  const tokens = new BootstrapTokens(store, { logger });
  const canaries = new CanaryController({
    store,
    setSplit: publishedSplit(config, publisher),
    healthyInstances: (service, subset) => config.healthyInstances(service, subset),
    checkSplit: (service, weights) => config.checkSplit(service, weights),
    // The push server is built below; a rollout's loop asks only once it runs, after that.
    released: () => push.released(),
    openWindow: (service, subset, unversionedFrom) => observability.stats.openWindow(service, subset, publisher.current().version, unversionedFrom),
    lease,
    logger,
  });
  // The stored mesh config (composed by publisher.start), every token and every running
  // rollout are checked before anything listens, in one pass: entries a hand edit or a newer
  // schema refuses stop the start with one message naming every key, of every kind.
  await checkAll(store.location, [publisher.start(), tokens.load(), canaries.load()], 'refusing to start');
  const proxies = new ProxyTracker(options.registryGraceMs);
  if (options.resyncHoldMs <= SIDECAR_RECONNECT_MAX_MS) {
    logger.warn(
      { resyncHoldMs: options.resyncHoldMs },
      `--resync-hold is not longer than the sidecars' ${SIDECAR_RECONNECT_MAX_MS / 1000} s reconnect backoff: after a restart, callers may be sent snapshots without instances that have not ${consul ? 'registered with Consul again (when it restarted too)' : 'reconnected'} yet`,
    );
  }

  const tls = await ControlPlaneTls.create(ca, logger, options.tlsSans);
  const signing = new SignStats();
  const metrics = new ControlPlaneMetrics(new Registry(), {
    csrOutcomes: () => signing.view(),
    proxyStates: () => {
      const version = publisher.current().version;
      return proxies.all().map((p) => syncState(p, version));
    },
  });
  // Tap commands go down the push stream, which is built next (they are only sent once a tap is opened).
  const observability = new Observability({ send: (service, kind, json) => push.sendCommand((p) => p.service === service, kind, json) }, logger);
  const push = new PushServer({
    publisher,
    proxies,
    registry,
    authenticate: streamAuthenticator(tokens, ca.trustDomains),
    trustDomains: ca.trustDomains,
    logger,
    credentials: tls.credentials,
    // Until Consul's catalog is read once, the publisher holds every snapshot (Discovery.unknown);
    // the hold counts from then, since a Consul that restarted too is still refilling.
    resyncHoldMs: options.resyncHoldMs,
    holdFrom: discovery.known?.(),
    keepaliveMs: options.keepaliveMs,
    sign: createSignHandler({ ca, verifyToken: (token) => tokens.verify(token), logger, onOutcome: (outcome) => signing.record(outcome) }),
    onTelemetry: (proxy, kind, json) => observability.ingest(proxy, kind, json),
    onGoodbye: (proxy) => observability.stats.goodbye(proxy),
    events: metrics,
  });
  const grpcPort = await push.listen(options.grpcHost, options.grpcPort);
  // Sidecars get the registry grace to come back, after a start or a broken stream, before a
  // rotation steps past them.
  const rotation = new RootRotation(ca, {
    proxies: () => [...proxies.all(), ...proxies.lost()],
    requestRenewal: (ids) => {
      const wanted = new Set(ids);
      push.sendCommand((p) => wanted.has(p.id), 'renew-cert', '{}');
    },
  }, logger, { settleMs: options.registryGraceMs });
  const webhook = options.webhookPort === undefined ? undefined : await startCaWebhook({
    ca, hosts: localHostNames(options.tlsSans), port: options.webhookPort, host: options.grpcHost, inject: options.inject ?? DEFAULT_INJECT_OPTIONS, logger,
  });

  const router = new Router();
  registerMetaRoutes(router, VERSION);
  registerServiceRoutes(router, { config, discovery });
  // Writes that would change what a running rollout steers are refused (409) or, forced, abort it.
  config.guardWith(canaries);
  registerConfigRoutes(router, { config, publisher, canaries, hold: push });
  registerApplyRoutes(router, { config, publisher, canaries, hold: push });
  registerProxyRoutes(router, { proxies, publisher });
  registerTokenRoutes(router, { tokens, onChange: (action) => metrics.tokenChanged(action) });
  registerCaRoutes(router, { ca, rotation, signing });
  registerExplainRoutes(router, { publisher, breakersTo: (service) => observability.stats.breakersTo(service), ejectionsTo: (service) => observability.stats.ejectionsTo(service) });
  registerInjectRoute(router, options.inject ?? DEFAULT_INJECT_OPTIONS);
  registerObservabilityRoutes(router, observability, { config, discovery });
  registerDashboardRoutes(router);
  registerMetricsRoute(router, metrics.registry);
  registerCanaryRoutes(router, canaries);
  // Its holder drives rollouts, the running ones resumed when it takes it.
  const driving = { taken: () => canaries.drive(), lost: () => canaries.standDown() };
  if (!lease.namesHolder) await lease.start(undefined, driving);
  const http = createAdminServer({ router, adminToken: admin.token, logger, maxBodyBytes: options.maxBodyBytes });
  metrics.countResponses(http);
  const httpPort = await listen(http, options.httpHost, options.httpPort);
  if (lease.namesHolder) canaries.decidedBy(lease.start(adminUrl(options.httpHost, httpPort), driving));

  logger.info({ grpcPort, httpPort, dataDir: options.dataDir, store: options.store, caFile: ca.bundlePath }, 'control plane listening');
  return {
    grpcPort,
    httpPort,
    webhookPort: webhook?.port,
    adminToken: admin.token,
    router,
    store,
    ca,
    tokens,
    push,
    async close() {
      http.closeAllConnections();
      await lease.close();
      await canaries.close();
      await new Promise<void>((resolve) => http.close(() => resolve()));
      rotation.close();
      observability.close();
      await push.close();
      await webhook?.close();
      tls.close();
      publisher.close();
      await discovery.close();
      await store.close();
      consul?.close();
    },
  };
}

/** The admin API's URL for other replicas and operators: an unspecified host is this machine's name. */
function adminUrl(host: string, port: number): string {
  const name = host === '0.0.0.0' || host === '::' || host === '' ? hostname() : host;
  return `http://${hostPort(name, port)}`;
}

function listen(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : port);
    });
  });
}

/**
 * Runs until SIGTERM or SIGINT, then stops accepting, ends streams and exits 0. SIGHUP is
 * logged and ignored: the mesh config lives in the store and changes through the admin API,
 * and the files the control plane reads (the CA, the admin token) are read at start only.
 */
export async function runControlPlane(options: ControlPlaneOptions): Promise<void> {
  const logger = createLogger('control-plane');
  const onHup = (): void => {
    logger.info({ signal: 'SIGHUP' }, 'SIGHUP: nothing to reload (the mesh config changes through the admin API; the CA and admin token are read at start); SIGTERM or SIGINT stops the control plane');
  };
  process.on('SIGHUP', onHup);
  const running = await startControlPlane(options, logger);
  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      logger.info({ signal }, 'shutting down');
      resolve();
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  await running.close();
  process.off('SIGHUP', onHup);
}
