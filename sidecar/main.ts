/**
 * `skein sidecar`: composes the sidecar from explicit parts (config source, endpoint source,
 * identity provider, metrics, logger), opens its listeners and runs until SIGTERM/SIGINT,
 * then drains and exits 0. SIGHUP reloads the --config file (static mode); in control-plane
 * mode it is logged and ignored.
 *
 *   inbound  :inboundPort  (mTLS when an identity is configured) → app on 127.0.0.1:appPort
 *   outbound 127.0.0.1:outboundPort, and one 127.0.0.1:PORT per --upstream → peer sidecars
 *   admin    127.0.0.1:adminPort
 */
import type { Http2ServerRequest } from 'node:http2';
import { hostForUrl } from '../common/net/host-port.js';
import { connect as netConnect, type Socket } from 'node:net';
import { createSecureContext, type ConnectionOptions, type TLSSocket } from 'node:tls';
import type { Dispatcher } from 'undici';
import { parseAuthoredSnapshot, parseSnapshot } from '../common/config/parse.js';
import { formatDuration } from '../common/config/duration.js';
import { createLogger, type Logger } from '../common/log.js';
import { UNNAMED_PEER } from '../common/proto/telemetry.js';
import { compileSplit } from '../common/routing/index.js';
import { createAdminServer, type AdminDeps } from './admin/server.js';
import { AppHealth } from './app-health.js';
import { InboundPeers, type PeerIdentity } from './authz/peer.js';
import { Mesh } from './cluster/mesh.js';
import type { RouteRuntime, SubsetRuntime } from './cluster/service-runtime.js';
import { H2Upstream, socketConnector } from './cluster/h2-upstream.js';
import { DEFAULT_KEEPALIVE } from './cluster/keepalive.js';
import { refuseOwnListeners } from './cluster/self-loop.js';
import { EndpointPools, UpstreamEndpoint, type PoolFactory } from './cluster/upstream-endpoint.js';
import { StaticFileConfigSource } from './config/static-file-source.js';
import type { ConfigSource } from './config-source.js';
import { StaticEndpointSource } from './discovery/static.js';
import { ConsulEndpointSource } from './discovery/consul.js';
import { ConsulRegistration } from './discovery/consul-registration.js';
import { UntilAnsweredSource } from './discovery/until-answered.js';
import { connectConsul, isLoopbackUrl, type ConsulConnection } from '../common/consul/client.js';
import type { EndpointSource } from './discovery/source.js';
import type { ExchangeDeps, ProxyRequest } from './exchange.js';
import type { IdentityProvider, TlsIdentity } from './identity/provider.js';
import { openIdentity } from './identity/open.js';
import { controlPlaneSource } from './identity/control-plane-mode.js';
import { peerConnector, peerMuxConnector, peerSessionConnector, peerSocket, peerTlsConnector, type HandshakeFailureListener } from './identity/outbound-connector.js';
import { inboundHandshakeFailureReason, inboundServerOptions, outboundConnectOptions, secureContextOptions, peerTrustDomainsOf, trustDomainOf } from './identity/tls-options.js';
import { Lifecycle } from './lifecycle.js';
import { reportReadiness } from './control-plane/readiness-report.js';
import { listen, ProxyListener, type MalformedListener } from './listeners.js';
import { H1Upstream } from './http1/client.js';
import { MuxUpstream } from './mux/upstream.js';
import { bootstrapToken, type SidecarOptions, type Upstream } from './options.js';
import { handleInbound, handleInboundUpgrade, handleOutbound, handleOutboundUpgrade, type InboundContext, type LocalApp, type OutboundContext } from './pipeline.js';
import { AuthorityServices } from './stages/decode.js';
import { proxyName } from './stages/reply.js';
import type { Connector } from './stages/upgrade.js';
import { SidecarMetrics, type Direction, type EdgeMetrics } from './telemetry/metrics.js';
import { TelemetryReporter } from './telemetry/reporter.js';
import { AccessLog } from './telemetry/access-log.js';
import { IdSource } from './telemetry/trace-context.js';

/** The pluggable parts; static mode fills them from files, control-plane mode from the push stream. */
export interface SidecarParts {
  readonly logger: Logger;
  readonly metrics: SidecarMetrics;
  readonly configSource: ConfigSource;
  readonly endpointSource: EndpointSource;
  /** Where a destination's endpoints come from once the app calls it, when not from endpointSource (MeshDeps.endpointSourceOnUse). */
  readonly endpointSourceOnUse?: EndpointSource;
  /** Called with each snapshot before the mesh installs it (static discovery reads endpoints from it). */
  readonly onSnapshot?: (snapshot: ReturnType<typeof parseSnapshot>) => void;
  /**
   * The snapshot's endpoints are every instance there is (static mode without --consul), so an
   * authored one naming a subset none of them has is refused (parseAuthoredSnapshot).
   */
  readonly endpointsInSnapshot?: boolean;
  readonly identity: IdentityProvider | undefined;
  /** Stats, tap and span export; none when absent. */
  readonly telemetry?: TelemetryReporter;
}

/** The OTLP scope version of exported spans. */
const SKEIN_VERSION = '0.1.0';

/**
 * At the drain's end, how long an HTTP/1.1 connection that ended after its last answer is left
 * for its client to close (Envoy's delayed_close_timeout, 1 s by default, serves the same end):
 * a client reads that end at once, so this is only the bound for one that does not.
 */
const CLOSE_GRACE_MS = 1000;
/** At the drain timeout, the longest wait for the answers the sidecar just gave to go out (their streams to end). */
const ANSWER_FLUSH_MS = 500;

/** A plain HTTP/1.1 upstream: the local app, or an endpoint when this sidecar has no identity. */
function h1Upstream(address: string, port: number): H1Upstream {
  return new H1Upstream({ host: address, port, maxHeaderBytes: 64 * 1024 });
}

/** TLS options to reach a peer sidecar of `service` with this identity. */
function peerTlsOptions(identity: TlsIdentity, context: ReturnType<typeof createSecureContext>, service: string): ConnectionOptions {
  if (trustDomainOf(identity) !== undefined) return outboundConnectOptions(identity, context, service);
  // A certificate without a SPIFFE ID: the chain is still verified, the peer's name is not.
  return { secureContext: context, rejectUnauthorized: true, checkServerIdentity: () => undefined };
}

/** An h2c upstream (no TLS): the local gRPC app, or a peer when this sidecar has no identity. */
function h2cUpstream(address: string, port: number): H2Upstream {
  return new H2Upstream(`http://${hostForUrl(address)}:${port}`, socketConnector(() => netConnect({ host: address, port }), 'connect'));
}

function transport(identity: TlsIdentity | undefined, onHandshakeFailure: HandshakeFailureListener): { pools: PoolFactory; connect: Connector } {
  if (identity === undefined) {
    return {
      // Without an identity an endpoint may be any HTTP server, not only a peer sidecar: plain HTTP/1.1.
      pools: (_service, address, port, protocol) =>
        protocol === 'grpc' ? h2cUpstream(address, port) : h1Upstream(address, port),
      connect: (_service, address, port) => netConnect({ host: address, port }),
    };
  }
  const context = createSecureContext({ key: identity.keyPem, cert: identity.certPem, ca: identity.caPem, minVersion: 'TLSv1.2' });
  const spiffe = trustDomainOf(identity) !== undefined;
  return {
    pools: (service, address, port, protocol) => {
      const origin = `https://${hostForUrl(address)}:${port}`;
      if (protocol === 'grpc') {
        const sessions = spiffe
          ? peerSessionConnector(peerConnector(identity, context, service, onHandshakeFailure, true), address, port)
          : peerTlsConnector(peerTlsOptions(identity, context, service), address, port, 'h2', onHandshakeFailure);
        // Peer sidecars answer PINGs; a stopped or vanished one is found within 15 s, as over the mux.
        return new H2Upstream(origin, sessions, DEFAULT_KEEPALIVE);
      }
      return new MuxUpstream(origin, peerMuxConnector(peerTlsOptions(identity, context, service), address, port, onHandshakeFailure));
    },
    connect: (service, address, port) => peerSocket(peerTlsOptions(identity, context, service), address, port, onHandshakeFailure),
  };
}

/**
 * Where endpoints come from: the snapshot's without Consul; with it, Consul's. In control-plane
 * mode the pushed snapshot's serve until the app first calls a destination, and then until
 * Consul first answers for it (a local agent down at start; see UntilAnsweredSource): the
 * snapshot names every service of the catalog, and one parked query for each would hold
 * connections to the agent for destinations this app never calls. A static file names the
 * destinations to watch and has no endpoints to stand in, so they are watched at once.
 */
function consulEndpoints(consul: ConsulConnection | undefined, pushed: boolean, snapshotEndpoints: StaticEndpointSource, logger: Logger): Pick<SidecarParts, 'endpointSource' | 'endpointSourceOnUse'> {
  if (!consul) return { endpointSource: snapshotEndpoints };
  const fromConsul = new ConsulEndpointSource(consul, logger);
  if (!pushed) return { endpointSource: fromConsul };
  return { endpointSource: snapshotEndpoints, endpointSourceOnUse: new UntilAnsweredSource(fromConsul, snapshotEndpoints) };
}

export async function runSidecar(given: SidecarOptions): Promise<void> {
  const options: SidecarOptions = { ...given, token: bootstrapToken(given.token) };
  const logger = createLogger('sidecar').child({ service: options.service, instance: options.instanceId });
  // SIGHUP must not end the sidecar (Node's default for it): in static mode the config source
  // re-reads the file on it once started; before that, and always in control-plane mode,
  // there is nothing to reload, and the sidecar says so and runs on.
  const onHup = (): void => {
    if (options.config) logger.info({ signal: 'SIGHUP', file: options.config }, 'SIGHUP: the config file is being read for the first time; nothing to reload yet');
    else logger.info({ signal: 'SIGHUP' }, `SIGHUP: nothing to reload, the config and certificates come from the control plane at ${options.controlPlane}`);
  };
  process.on('SIGHUP', onHup);
  const endpoints = new StaticEndpointSource();
  // With --consul, endpoints come from Consul; a pushed snapshot's only until the app calls a destination and Consul first answers for it.
  const consul = options.consul ? connectConsul(options.consul) : undefined;
  const metrics = new SidecarMetrics();
  const identity = options.controlPlane
    ? await answeringAdminWhile(options, metrics, `waiting for a certificate from the control plane at ${options.controlPlane}`, () => openIdentity(options, logger))
    : await openIdentity(options, logger);
  // Control-plane mode: snapshots (endpoints included) arrive on the push stream, which also carries telemetry up.
  const stream = options.config ? undefined : controlPlaneSource(options, identity, logger, (kind, json) => telemetry.command(kind, json));
  const accessLog = options.accessLog === undefined ? undefined : await AccessLog.open({ destination: options.accessLog, format: options.accessLogFormat ?? 'json', metrics, logger });
  // logrotate's postrotate `kill -HUP`: lines go to a new file at the path from here on.
  if (accessLog?.isFile) process.on('SIGHUP', () => accessLog.reopen());
  const telemetry = new TelemetryReporter({
    service: options.service,
    instance: options.instanceId,
    version: SKEIN_VERSION,
    metrics,
    logger,
    sink: stream,
    otlpEndpoint: options.otlpEndpoint,
    accessLog,
  });
  const sidecar = await startSidecar(options, {
    logger,
    metrics,
    configSource: stream ?? new StaticFileConfigSource(options.config!, logger),
    ...consulEndpoints(consul, stream !== undefined, endpoints, logger),
    // Pushed snapshots' endpoints feed the source, or Consul's stand-in (a file's are not read with --consul).
    onSnapshot: consul && !stream ? undefined : (snapshot) => endpoints.update(snapshot),
    endpointsInSnapshot: !consul,
    identity,
    telemetry,
  });
  // Static mode: the config source has its own SIGHUP handler now.
  if (options.config) process.off('SIGHUP', onHup);
  const registration = consul && new ConsulRegistration(consul, {
    id: options.instanceId,
    service: options.service,
    version: options.version,
    protocol: options.appProtocol,
    address: options.advertiseAddress,
    port: sidecar.ports.inbound,
    // The check names this instance: a process restarted on the same admin port fails an earlier one's check.
    checkUrl: `http://127.0.0.1:${sidecar.ports.admin}/ready?instance=${encodeURIComponent(options.instanceId)}`,
    // An agent off this host cannot reach the loopback admin port: a TTL check fed by /ready's own verdict.
    ttlReadiness: isLoopbackUrl(consul.url) ? undefined : () => sidecar.lifecycle.notReady(),
  }, logger);
  const readiness = stream && reportReadiness(() => sidecar.lifecycle.notReady(), (reasons) => stream.reportReadiness(reasons));
  // A renewal can end "certificates: expired" (after a control-plane outage): say so at once, not at the next check.
  if (readiness) identity?.onChange(() => readiness.check());
  const stop = (signal: string): void => {
    logger.info({ signal, inFlight: sidecar.lifecycle.inFlight }, 'draining before exit');
    // SPEC §3's order: /ready turns 503 at once (so Consul's check fails and probes see it) and
    // the drain clock starts; the deregistration (up to 2 s) runs within the drain, not before it.
    void sidecar.startDrain(options.drainTimeoutMs);
    // Draining is the last word: the control plane hears it now, and the periodic checks end
    // here, before shutdown closes the push stream they report on.
    readiness?.check();
    readiness?.stop();
    void (registration ? registration.deregister() : Promise.resolve())
      .then(() => sidecar.shutdown(options.drainTimeoutMs))
      .then(() => {
        consul?.close();
        process.exit(0);
      });
  };
  // The first SIGTERM or SIGINT drains. During the drain another SIGTERM (a supervisor
  // repeating itself) changes nothing; a SIGINT is an operator's second Ctrl-C, which ends the
  // wait at once, as in most servers with a graceful stop. Either way the log says so.
  let stopping = false;
  const onStopSignal = (signal: NodeJS.Signals): void => {
    if (!stopping) {
      stopping = true;
      stop(signal);
    } else if (signal === 'SIGINT') {
      logger.warn({ signal, inFlight: sidecar.lifecycle.inFlight }, `${signal} while draining: exiting now, ${sidecar.lifecycle.inFlight} in flight cut off`);
      process.exit(1);
    } else {
      logger.info({ signal, inFlight: sidecar.lifecycle.inFlight }, `${signal}: already draining (${sidecar.lifecycle.inFlight} in flight); SIGINT exits at once`);
    }
  };
  process.on('SIGTERM', onStopSignal);
  process.on('SIGINT', onStopSignal);
}

/**
 * The first certificate may be a long wait (the control plane is down: static stability
 * says wait, not crash). Meanwhile the admin port answers, `/ready` saying what it waits
 * for, so probes and operators see why; the full admin server takes the port over after.
 */
async function answeringAdminWhile<T>(options: SidecarOptions, metrics: SidecarMetrics, waitingFor: string, start: () => Promise<T>): Promise<T> {
  const admin = createAdminServer({
    notReady: () => [waitingFor],
    metricsText: () => metrics.text(),
    metricsContentType: metrics.contentType,
    config: () => ({ version: null, source: waitingFor, snapshot: null }),
    clusters: () => ({}),
    drain: () => 0,
    instanceId: options.instanceId,
  } satisfies AdminDeps);
  await listen(admin, options.adminPort, '127.0.0.1');
  try {
    return await start();
  } finally {
    await new Promise<void>((resolve) => {
      admin.close(() => resolve());
      admin.closeAllConnections();
    });
  }
}

export interface RunningSidecar {
  readonly lifecycle: Lifecycle;
  readonly mesh: Mesh;
  /** The ports bound, which differ from the options' where those asked for any free port (0). */
  readonly ports: { readonly admin: number; readonly inbound: number; readonly outbound: number };
  /** /ready turns 503, responses carry Connection: close; resolves true once nothing is in flight (false at the timeout). */
  startDrain(drainTimeoutMs: number): Promise<boolean>;
  /** Drains (joining a drain already started), then closes everything. */
  shutdown(drainTimeoutMs: number): Promise<void>;
}

export async function startSidecar(options: SidecarOptions, parts: SidecarParts): Promise<RunningSidecar> {
  const { logger, metrics } = parts;
  const lifecycle = new Lifecycle();
  const random = Math.random;
  const ids = new IdSource();
  let tlsIdentity = parts.identity?.current();
  const onHandshakeFailure: HandshakeFailureListener = (reason, err) => {
    metrics.tlsHandshakeFailed(reason);
    logger.warn({ reason, code: err.code }, `outbound TLS handshake failed: ${err.message}`);
  };
  const net = transport(tlsIdentity, onHandshakeFailure);
  // The outbound listeners' ports; one given as 0 is added once bound (below).
  const ownPorts = new Set([options.outboundPort, ...options.upstreams.map((u) => u.port)].filter((port) => port !== 0));
  const pools = new EndpointPools(refuseOwnListeners(net.pools, ownPorts, logger));
  let connect = net.connect;
  const mesh = new Mesh({ self: options.service, endpointSource: parts.endpointSource, endpointSourceOnUse: parts.endpointSourceOnUse, pools, metrics, logger });

  if (tlsIdentity) metrics.setCertExpiry(tlsIdentity.notAfter.getTime() / 1000);
  parts.identity?.onChange((next) => {
    tlsIdentity = next;
    const t = transport(next, onHandshakeFailure);
    pools.replaceFactory(refuseOwnListeners(t.pools, ownPorts, logger));
    connect = t.connect;
    inbound.setSecureContext?.(secureContextOptions(next));
    metrics.setCertExpiry(next.notAfter.getTime() / 1000);
    // A change of the trust domains peers may be in (a mesh moving to another one) comes this way too.
    logger.info({ spiffeId: next.spiffeId, notAfter: next.notAfter.toISOString(), peerTrustDomains: peerTrustDomainsOf(next) }, 'identity renewed');
  });

  // ---- config -------------------------------------------------------------------------
  let version: string | undefined;
  const endpointsInFile = parts.endpointsInSnapshot === true;
  const parse = parts.configSource.authored ? (raw: unknown) => parseAuthoredSnapshot(raw, 'config', { endpointsInFile }) : parseSnapshot;
  const apply = (raw: unknown): void => {
    let snapshot;
    try {
      snapshot = parse(raw);
    } catch (err) {
      metrics.configUpdate('nack');
      throw err;
    }
    parts.onSnapshot?.(snapshot);
    mesh.install(snapshot);
    version = snapshot.version;
    metrics.configUpdate('ack');
    logger.info({ version, services: Object.keys(snapshot.services) }, 'config applied');
  };
  await parts.configSource.start(apply, () => metrics.configUpdate('nack'));

  // ---- the local app ------------------------------------------------------------------
  const appPool = options.appProtocol === 'grpc' ? h2cUpstream('127.0.0.1', options.appPort) : h1Upstream('127.0.0.1', options.appPort);
  const appHealth = new AppHealth({ port: options.appPort, path: options.appHealthPath, protocol: options.appProtocol }, appPool as Dispatcher, logger);
  const appEndpoint = new UpstreamEndpoint(`127.0.0.1:${options.appPort}`, '127.0.0.1', options.appPort, { version: options.version }, appPool);
  const inboundEdges = new Map<string, EdgeMetrics>();
  const appSubset: SubsetRuntime = {
    service: options.service,
    name: options.version,
    endpoints: [appEndpoint],
    picker: { pick: () => appEndpoint },
    failover: null,
    breaker: null,
    edge: metrics.edge('inbound', UNNAMED_PEER, options.service, options.version),
    successor: null,
  };
  const appRoute: RouteRuntime = {
    index: 0,
    name: 'inbound',
    split: compileSplit(undefined),
    subsets: [appSubset],
    // The caller's sidecar owns timeouts and retries for this hop.
    timeoutMs: 0,
    retry: null,
    retryNonIdempotent: false,
    fault: null,
    mirror: null,
    requestChanges: null,
    responseHeaders: null,
  };
  const app: LocalApp = {
    route: appRoute,
    subset: appSubset,
    edge(source) {
      const key = source ?? UNNAMED_PEER;
      let edge = inboundEdges.get(key);
      if (edge === undefined) {
        edge = metrics.edge('inbound', key, options.service, options.version);
        inboundEdges.set(key, edge);
      }
      return edge;
    },
  };

  // ---- readiness ----------------------------------------------------------------------
  lifecycle.addCheck({ name: 'config', outbound: true, blocker: () => (parts.configSource.hasSnapshot ? undefined : parts.configSource.status) });
  if (parts.identity) lifecycle.addCheck({ name: 'certificates', outbound: true, blocker: () => certificateBlocker(tlsIdentity) });
  lifecycle.addCheck({ name: 'app', outbound: false, blocker: () => appHealth.readinessBlocker() });

  // ---- listeners ----------------------------------------------------------------------
  const recorder = parts.telemetry?.recorder ?? null;
  const accessLog = parts.telemetry?.accessLog ?? null;
  const malformed = (direction: Direction): MalformedListener => (status, detail) => {
    metrics.malformedRequest(direction, status);
    accessLog?.malformed(direction, status, detail);
  };
  const maxBodyBytes = options.maxRequestBodyBytes;
  const maxHeaderBytes = options.maxRequestHeaderBytes;
  const outboundDeps: ExchangeDeps = { direction: 'outbound', proxyName: proxyName(options.service, 'outbound'), peerIsSidecar: tlsIdentity !== undefined, ids, lifecycle, metrics, random, recorder, maxBodyBytes, maxHeaderBytes };
  const inboundDeps: ExchangeDeps = { direction: 'inbound', proxyName: proxyName(options.service, 'inbound'), peerIsSidecar: false, ids, lifecycle, metrics, random, recorder, maxBodyBytes, maxHeaderBytes };
  const peers = new InboundPeers({
    trustDomains: () => peerTrustDomainsOf(tlsIdentity),
    onRejected: (reason, detail, socket) => {
      metrics.tlsHandshakeFailed(reason);
      logger.warn({ reason, remote: socket.remoteAddress }, `inbound connection refused: ${detail}`);
    },
  });
  const inboundCtx: InboundContext = {
    deps: inboundDeps,
    mesh,
    metrics,
    self: options.service,
    app,
    peerOf: tlsIdentity ? (req) => inboundPeer(peers, req) : () => undefined,
    forwardedClientCert: forwardedClientCertFor(() => tlsIdentity?.spiffeId),
    appBlocker: () => appHealth.trafficBlocker(),
    connectApp: (_service, address, port) => netConnect({ host: address, port }),
  };
  const services = new AuthorityServices();
  const outboundCtx = (fixedService: string | undefined): OutboundContext => ({
    deps: outboundDeps,
    mesh,
    fixedService,
    services,
    connect: (service, address, port) => connect(service, address, port),
  });

  const inbound = new ProxyListener({
    onRequest: (req, res) => handleInbound(inboundCtx, req, res),
    onUpgrade: (req, socket, head) => handleInboundUpgrade(inboundCtx, req, socket, head),
    onMalformed: malformed('inbound'),
    proxyName: inboundDeps.proxyName,
    maxBodyBytes,
    maxHeaderBytes,
    // Certificates are requested but judged by `peers` (sidecar/authz/peer.ts), which logs and counts the exact reason.
    tls: tlsIdentity ? inboundServerOptions(tlsIdentity) : undefined,
    admit: (socket) => peers.admit(socket),
    mux: true,
  });
  if (tlsIdentity) {
    inbound.on('tlsClientError', (err: Error & { code?: string }, socket: Socket) => {
      const reason = inboundHandshakeFailureReason(err, socket as TLSSocket);
      if (reason === undefined) return;
      metrics.tlsHandshakeFailed(reason);
      logger.warn({ reason, code: err.code, remote: socket.remoteAddress }, 'inbound TLS handshake failed');
    });
  } else {
    logger.warn('no identity (static mode without --cert-file, --key-file and --ca-file): the inbound listener speaks plain HTTP and callers have no verified identity');
  }
  const mainOutbound = outboundCtx(undefined);
  const outboundListener = (ctx: OutboundContext): ProxyListener =>
    new ProxyListener({
      onRequest: (req, res) => handleOutbound(ctx, req, res),
      onUpgrade: (req, socket, head) => handleOutboundUpgrade(ctx, req, socket, head),
      onMalformed: malformed('outbound'),
      proxyName: outboundDeps.proxyName,
      maxBodyBytes,
      maxHeaderBytes,
      // HTTP_PROXY clients that tunnel even http:// URLs (undici's ProxyAgent, so Node's fetch).
      tunnels: {
        onTls: (target) =>
          logger.warn({ target }, `CONNECT tunnel to ${target} closed: its client began TLS in it (an https:// URL); the mesh routes http:// URLs and adds mTLS itself`),
      },
    });
  const outbound = outboundListener(mainOutbound);
  const dedicated = options.upstreams.map((u) => ({ upstream: u, server: outboundListener(outboundCtx(u.service)) }));

  let drainStarted: Promise<boolean> | undefined;
  const startDrain = (timeoutMs: number): Promise<boolean> => {
    if (drainStarted === undefined) {
      logger.info({ inFlight: lifecycle.inFlight }, 'draining: /ready is 503 and responses carry Connection: close');
      drainStarted = lifecycle.drain(timeoutMs);
      for (const server of [inbound, outbound, ...dedicated.map((d) => d.server)]) server.drain();
    }
    return drainStarted;
  };

  const admin = createAdminServer({
    notReady: (outbound) => lifecycle.notReady(outbound),
    metricsText: () => metrics.text(),
    metricsContentType: metrics.contentType,
    config: () => ({ version: version ?? null, source: parts.configSource.status, snapshot: mesh.snapshot ?? null }),
    clusters: () => mesh.clusters(),
    drain: () => {
      void startDrain(options.drainTimeoutMs);
      return lifecycle.inFlight;
    },
    instanceId: options.instanceId,
  } satisfies AdminDeps);

  // Port 0 binds any free port: what is logged and registered is the port bound.
  const ports = {
    admin: await listen(admin, options.adminPort, '127.0.0.1'),
    inbound: await inbound.listen(options.inboundPort, options.inboundHost),
    outbound: await outbound.listen(options.outboundPort, '127.0.0.1'),
  };
  const upstreams: Upstream[] = [];
  for (const d of dedicated) upstreams.push({ service: d.upstream.service, port: await d.server.listen(d.upstream.port, '127.0.0.1') });
  for (const port of [ports.outbound, ...upstreams.map((u) => u.port)]) ownPorts.add(port);
  appHealth.start();
  parts.telemetry?.start(mesh);
  logger.info(
    {
      inbound: `${options.inboundHost}:${ports.inbound}`,
      mtls: tlsIdentity !== undefined,
      outbound: `127.0.0.1:${ports.outbound}`,
      upstreams,
      admin: `127.0.0.1:${ports.admin}`,
      app: `127.0.0.1:${options.appPort}`,
    },
    'sidecar listening',
  );

  return {
    lifecycle,
    mesh,
    ports,
    startDrain,
    async shutdown(drainTimeoutMs) {
      // One drain: started here unless POST /drain started it. Either way --drain-timeout
      // counts from the signal (README), so the wait is a fresh one, not /drain's.
      const deadline = performance.now() + drainTimeoutMs;
      void startDrain(drainTimeoutMs);
      let idle = await lifecycle.drain(drainTimeoutMs);
      const servers = [inbound, outbound, ...dedicated.map((d) => d.server)];
      for (const server of servers) server.stopAccepting();
      // Requests that began after the drain found none in flight (a session opened while
      // draining serves the stream it came with) finish too, within the same timeout, rather
      // than being reset by the close below; so do streams already read but not yet handed to
      // the pipeline, which surface within a turn.
      await new Promise((resolve) => setImmediate(resolve));
      if (idle && lifecycle.inFlight > 0) idle = await lifecycle.drain(Math.max(0, deadline - performance.now()));
      if (!idle) {
        const inFlight = lifecycle.inFlight;
        const answered = lifecycle.cutOff(`sidecar shutting down: its drain timeout (${formatDuration(drainTimeoutMs)}) ran out`);
        logger.warn({ inFlight, answered }, 'drain timeout reached with requests in flight: those not answered yet get 503 retries-exhausted (gRPC: 14 UNAVAILABLE, begun streams too), other answers begun are cut');
        // The answers just given go out before their connections close (an HTTP/2 session is
        // destroyed at once below, with whatever its streams had not sent yet).
        if (answered > 0) await lifecycle.settle(inFlight - answered, ANSWER_FLUSH_MS);
      }
      appHealth.stop();
      const closed = Promise.all(servers.map((server) => server.close(CLOSE_GRACE_MS)));
      admin.close();
      admin.closeAllConnections();
      await parts.telemetry?.close();
      await parts.configSource.close();
      await Promise.all([parts.endpointSource.close(), parts.endpointSourceOnUse?.close()]);
      await parts.identity?.close();
      mesh.close();
      await Promise.race([Promise.all([pools.close(), appPool.close()]), new Promise((r) => setTimeout(r, 1000).unref())]);
      await closed;
      logger.info('sidecar stopped');
    },
  };
}

/**
 * `x-forwarded-client-cert` as Envoy writes it for Istio's apps (`By=` this sidecar's
 * identity, `URI=` the caller's), one string per caller identity rather than per request.
 */
function forwardedClientCertFor(self: () => string | undefined): (peer: PeerIdentity) => string {
  const values = new Map<string, string>();
  return (peer) => {
    let value = values.get(peer.spiffeId);
    if (value === undefined) {
      value = `By=${self() ?? ''};URI=${peer.spiffeId}`;
      // Callers are the mesh's services: few, so the map stays small.
      values.set(peer.spiffeId, value);
    }
    return value;
  };
}

function inboundPeer(peers: InboundPeers, req: ProxyRequest): PeerIdentity | undefined {
  const h2 = (req as unknown as Partial<Http2ServerRequest>).stream?.session;
  return h2 ? peers.peerOfSession(h2) : peers.peerOf(req.socket as TLSSocket);
}

/** Why the sidecar's own certificate cannot be used: none yet, or expired (peers refuse it at the handshake; renewal may be waiting on the control plane). */
function certificateBlocker(identity: TlsIdentity | undefined): string | undefined {
  if (identity === undefined) return 'no certificate yet';
  return identity.notAfter.getTime() <= Date.now() ? `the certificate expired at ${identity.notAfter.toISOString()}` : undefined;
}
