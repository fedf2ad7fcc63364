/**
 * The request path, in order. This file is the one place the stage order is written:
 *
 *   outbound (app → sidecar → peer sidecar):
 *     decode → route → changes (rewrite, request headers) → fault → split (+ mirror) → balance
 *       → resilience → upstream (+ the rule's response header changes) → telemetry
 *   inbound (peer sidecar → sidecar → app):
 *     decode → authz → rate limit → balance (the local app, once healthy) → upstream → telemetry
 *
 * decode, route, authz and split run here; balance, resilience (timeout, retry, breaker,
 * outlier), upstream and telemetry run in the Exchange's attempt loop (exchange.ts). Every
 * per-route stage was compiled when the snapshot arrived (cluster/service-runtime.ts) and is
 * `null` when off, so a request pays only for what its route uses.
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { UNNAMED_PEER } from '../common/proto/telemetry.js';
import { matchRoute, pickSplit } from '../common/routing/index.js';
import { decidesPerRequest, deniedDetail } from './authz/intentions.js';
import type { PeerIdentity } from './authz/peer.js';
import type { Mesh } from './cluster/mesh.js';
import { admitTry, pickWithoutFailover, refusalText, type RouteRuntime, type SubsetRuntime } from './cluster/service-runtime.js';
import { Exchange, type ExchangeDeps, type ProxyRequest, type ProxyResponse } from './exchange.js';
import { absoluteAuthority, hostIndex, isLoopbackAuthority, originForm, pathOf, setHost, singleHost, type AuthorityServices } from './stages/decode.js';
import { EndpointVerdict, spliceUpgrade, type Connector } from './stages/upgrade.js';
import { EarlyBytes } from './stages/early-bytes.js';
import type { FaultStage, FaultTarget } from './stages/fault.js';
import { Admission } from './resilience/breaker.js';
import { RateLimitedError, type SkeinError } from '../common/errors.js';
import { connectFailureText, dispatchFailure } from './stages/upstream.js';
import { BodyTooLargeError } from './http1/incoming.js';
import { headTooLarge } from './http1/request-head.js';
import { normaliseTarget } from '../common/http/request-target.js';
import type { EdgeMetrics, SidecarMetrics } from './telemetry/metrics.js';

export interface OutboundContext {
  readonly deps: ExchangeDeps;
  readonly mesh: Mesh;
  /** Set on a dedicated `--upstream NAME:PORT` listener. */
  readonly fixedService: string | undefined;
  /** Reads the service a Host names, where no fixedService is set. */
  readonly services: AuthorityServices;
  readonly connect: Connector;
}

/** The inbound hop's only destination: the app on 127.0.0.1:appPort. */
export interface LocalApp {
  readonly route: RouteRuntime;
  readonly subset: SubsetRuntime;
  edge(source: string | undefined): EdgeMetrics;
}

export interface InboundContext {
  readonly deps: ExchangeDeps;
  readonly mesh: Mesh;
  readonly metrics: SidecarMetrics;
  /** This sidecar's service. */
  readonly self: string;
  readonly app: LocalApp;
  /** The caller's identity from its connection's verified certificate; undefined without mTLS. */
  peerOf(req: ProxyRequest): PeerIdentity | undefined;
  /** The `x-forwarded-client-cert` value the app gets for a verified caller. */
  forwardedClientCert(peer: PeerIdentity): string;
  /** undefined when the app may receive traffic, else why not. */
  appBlocker(): string | undefined;
  readonly connectApp: Connector;
}

/**
 * RFC 9112 §3.2.2, outbound and inbound alike: an absolute-form target's authority wins over
 * the Host received, and a proxy sends it on as the Host, with the target in origin form.
 */
function takeAbsoluteTarget(ex: Exchange): void {
  const absolute = absoluteAuthority(ex.url);
  if (absolute === undefined) return;
  ex.url = originForm(ex.url, absolute, ex.method);
  ex.authority = absolute;
  setHost(ex.headers, absolute);
}

// ---- outbound ---------------------------------------------------------------------------

/** decode → route → split: the chosen route and subset, or undefined after replying. */
function outboundTarget(ctx: OutboundContext, ex: Exchange): { route: RouteRuntime; subset: SubsetRuntime } | undefined {
  // decode
  ex.decodeHeaders();
  if (ex.h2 && !h2HeadAccepted(ex, ctx.mesh)) return undefined;
  let service = ctx.fixedService;
  takeAbsoluteTarget(ex);
  if (service === undefined) {
    if (ex.authority === '') {
      ex.edge = ctx.mesh.unroutedEdge(undefined);
      // An empty Host is well-formed (RFC 9112 §3.2 has clients send one for a target without authority) but names no service either.
      const host = hostIndex(ex.headers) < 0 ? 'no Host header' : 'an empty Host header';
      ex.reply('bad-request', `${host} and no absolute-form target: cannot tell the destination service`);
      return undefined;
    }
    service = ctx.services.serviceOf(ex.authority);
  } else if (ex.authority === '' || isLoopbackAuthority(ex.authority)) {
    // A dedicated port's caller named no host (HTTP/1.0), or only the port's own address
    // (`127.0.0.1:7001`): the service is what it addressed. Any other Host is the caller's, kept.
    ex.authority = service;
    setHost(ex.headers, service);
  }
  ex.destination = service;
  const runtime = service === '' ? undefined : ctx.mesh.service(service);
  if (runtime === undefined) {
    ex.edge = ctx.mesh.unroutedEdge(undefined);
    ex.reply('no-route', ctx.fixedService === undefined ? `no service named by ${JSON.stringify(ex.authority)}` : `no service ${JSON.stringify(service)} (this --upstream port's) in the snapshot`);
    return undefined;
  }
  // route
  // `host` checks read the authority forwarded (the Host sent on, or HTTP/2's :authority), not ex.req.headers.
  const index = matchRoute(runtime.table, ex.method, pathOf(ex.url), runtime.table.usesHeaders ? ex.req.headers : undefined, ex.authority);
  if (index < 0) {
    ex.edge = ctx.mesh.unroutedEdge(service);
    ex.reply('no-route', `no route rule of ${service} matches ${ex.method} ${pathOf(ex.url)}`);
    return undefined;
  }
  const route = runtime.routes[index]!;
  // split
  const subset = route.subsets[pickSplit(route.split, ctx.deps.random())]!;
  if (runtime.hashKey !== null) ex.hash = runtime.hashKey(ex.req.headers, ex.url, ex.authority);
  // Counted from here on, so fault-injected answers show up in the edge's metrics too.
  ex.edge = subset.edge;
  ex.outlier = runtime.outlier;
  ex.budget = runtime.budget;
  if (!declaredBodyFits(ex)) return undefined;
  // rewrite and header changes (null when the rule has none): made once, before the sidecar's
  // own headers, so every try and mirror copy carries them once.
  if (route.requestChanges !== null) route.requestChanges.apply(ex);
  return { route, subset };
}

/**
 * HTTP/1.1 heads are held to `--max-request-headers` and their targets checked and normalised as they
 * are parsed (http1/server.ts, common/http/request-target.ts); an HTTP/2 head comes whole
 * (nghttp2 takes larger ones), so it is checked here: its size, counted as the HTTP/1.1 lines
 * it stands for, its Host beside `:authority` (decode.ts singleHost), and its `:path`, so a
 * route matches the path the app will read either way. False after replying `431` or `400 bad-request`.
 */
function h2HeadAccepted(ex: Exchange, mesh: Mesh | null): boolean {
  const raw = ex.req.rawHeaders;
  let bytes = 0;
  for (let i = 0; i < raw.length; i += 2) bytes += raw[i]!.length + raw[i + 1]!.length + 4;
  const max = ex.deps.maxHeaderBytes;
  if (bytes > max) {
    if (mesh !== null) ex.edge = mesh.unroutedEdge(undefined);
    ex.reply('bad-request', headTooLarge(max).message, 431);
    return false;
  }
  const conflict = singleHost(ex.headers);
  if (conflict !== undefined) {
    if (mesh !== null) ex.edge = mesh.unroutedEdge(undefined);
    ex.reply('bad-request', conflict);
    return false;
  }
  try {
    ex.url = normaliseTarget(ex.url, ex.method);
    return true;
  } catch (err) {
    if (mesh !== null) ex.edge = mesh.unroutedEdge(undefined);
    ex.reply('bad-request', `malformed :path: ${(err as Error).message}`);
    return false;
  }
}

/** A body whose Content-Length is past `--max-request-body` is refused before anything is sent (a streamed one fails as it grows). */
function declaredBodyFits(ex: Exchange): boolean {
  const limit = ex.deps.maxBodyBytes;
  if (limit === 0 || ex.contentLength <= limit) return true;
  ex.replyError(new BodyTooLargeError(limit));
  return false;
}

export function handleOutbound(ctx: OutboundContext, req: ProxyRequest, res: ProxyResponse): void {
  const ex = new Exchange(ctx.deps, req, res);
  const target = outboundTarget(ctx, ex);
  if (target === undefined) return;
  const { route, subset } = target;
  // fault (compiled per route; null when off): the exchange goes on with faultPassed(). A
  // delay's timer is the exchange's one timer until then, so a caller that leaves during it
  // (finish) takes it down, rather than leaving the exchange held until the delay is over.
  if (route.fault !== null) {
    ex.route = route;
    ex.subset = subset;
    ex.timer = route.fault(ex);
    return;
  }
  // balance → resilience → upstream → telemetry
  ex.forward(route, subset, ex.outlier, ex.budget);
}

/** decode → route → fault → split → balance → breaker → splice: a WebSocket upgrade takes the stages a request does, but retries. */
export function handleOutboundUpgrade(ctx: OutboundContext, req: ProxyRequest, socket: Socket, head: Buffer): void {
  const ex = upgradeExchange(ctx.deps, req, socket);
  const target = outboundTarget(ctx, ex);
  if (target === undefined) return;
  const upgrade = new OutboundUpgrade(ctx, ex, target.route, target.subset, socket, head);
  if (target.route.fault !== null) upgrade.delayOrAbort(target.route.fault);
  else upgrade.faultPassed();
}

/** An outbound upgrade past routing, as its route's fault sees it (a FaultTarget, as a request's Exchange is). */
class OutboundUpgrade implements FaultTarget {
  /** Read during the fault's delay (see EarlyBytes); null without one. */
  private early: EarlyBytes | null = null;

  constructor(
    private readonly ctx: OutboundContext,
    private readonly ex: Exchange,
    private readonly route: RouteRuntime,
    private readonly subset: SubsetRuntime,
    private readonly socket: Socket,
    private head: Buffer,
  ) {}

  /** Runs the fault; a client that leaves during its delay is counted gone then, as a request's is. */
  delayOrAbort(fault: FaultStage): void {
    this.socket.once('close', this.clientLeft);
    this.early = new EarlyBytes(this.socket, this.head);
    // As a request's (handleOutbound): the client leaving finishes the exchange, which clears it.
    this.ex.timer = fault(this);
  }

  /** The fault is done with: whatever comes next (the splice, a reply's linger) reads the client from here, with its bytes so far in `head`. */
  private faultDone(): void {
    this.socket.off('close', this.clientLeft);
    if (this.early !== null) this.head = this.early.stop();
  }

  private readonly clientLeft = (): void => {
    // The exchange's response 'close': in-flight count down, 499.
    if (!this.ex.finished) this.ex.res.emit('close');
  };

  faultPassed(): void {
    const { ctx, ex, subset } = this;
    ex.timer = undefined;
    this.faultDone();
    if (ex.finished) return;
    const endpoint = pickWithoutFailover(subset, ex.hash);
    if (endpoint === undefined) return ex.reply('no-healthy-endpoints');
    const admission = admitTry(subset);
    if (admission === Admission.Refused) return ex.reply('circuit-open', refusalText(subset));
    const verdict = new EndpointVerdict(ex.outlier, endpoint.key, subset.breaker, admission);
    if (admission === Admission.Trial) subset.breaker!.startTrial(verdict);
    ex.stampHeaders();
    let upstream: Socket;
    try {
      upstream = ctx.connect(ex.destination, endpoint.address, endpoint.port);
    } catch (err) {
      // As a request's dispatch (Exchange.send): a connect that throws fails this upgrade, not the process.
      verdict.record(true);
      return ex.reply('upstream-connect-failure', connectFailureText(dispatchFailure(err, endpoint.key)));
    }
    spliceUpgrade(ex, this.socket, this.head, upstream, this.route.timeoutMs, verdict);
  }

  replyError(err: SkeinError): void {
    this.faultDone();
    this.ex.replyError(err);
  }
}

// ---- inbound ----------------------------------------------------------------------------

/** decode → authz → app readiness → rate limit; false after replying. */
function inboundAdmit(ctx: InboundContext, ex: Exchange): boolean {
  ex.decodeHeaders();
  ex.destination = ctx.self;
  // As on the outbound: a plain caller of this port, or a peer's mux request, may send an
  // absolute-form target (a calling sidecar never does).
  takeAbsoluteTarget(ex);
  const peer = ctx.peerOf(ex.req);
  const source = peer?.service;
  ex.edge = ctx.app.edge(source);
  if (ex.h2 && !h2HeadAccepted(ex, null)) return false;
  // authz: the source is the verified peer certificate's identity, never a header. A pair
  // governed by HTTP permissions is decided per request, on the path as normalised.
  const verdict = ctx.mesh.authorize(source, ctx.self);
  const decision = decidesPerRequest(verdict) ? verdict.decide(ex.method, pathOf(ex.url), verdict.usesHeaders ? ex.req.headers : undefined, ex.authority) : verdict;
  if (!decision.allowed) {
    ctx.metrics.authzDeniedRequest(source ?? UNNAMED_PEER, ctx.self);
    ex.reply('denied', deniedDetail(source, ctx.self, decision));
    return false;
  }
  const blocker = ctx.appBlocker();
  if (blocker !== undefined) {
    ex.reply('no-healthy-endpoints', blocker);
    return false;
  }
  // The caller's own header was dropped with decode (an app may trust it, as under Istio).
  if (peer !== undefined) ex.headers.push('x-forwarded-client-cert', ctx.forwardedClientCert(peer));
  if (!declaredBodyFits(ex)) return false;
  // rate limit (null without one): last, so only a request that would reach the app takes a token.
  const limit = ctx.mesh.rateLimit;
  if (limit === null) return true;
  const refusal = limit.admit(source ?? UNNAMED_PEER, ex.method, pathOf(ex.url), limit.usesHeaders ? ex.req.headers : undefined, ex.authority);
  if (refusal === null) return true;
  ctx.metrics.rateLimited(source ?? UNNAMED_PEER, ctx.self);
  ex.replyError(new RateLimitedError(ctx.self, refusal));
  return false;
}

export function handleInbound(ctx: InboundContext, req: ProxyRequest, res: ProxyResponse): void {
  const ex = new Exchange(ctx.deps, req, res);
  if (!inboundAdmit(ctx, ex)) return;
  ex.forward(ctx.app.route, ctx.app.subset, null, null);
}

export function handleInboundUpgrade(ctx: InboundContext, req: ProxyRequest, socket: Socket, head: Buffer): void {
  const ex = upgradeExchange(ctx.deps, req, socket);
  if (!inboundAdmit(ctx, ex)) return;
  const endpoint = ctx.app.subset.endpoints[0]!;
  ex.stampHeaders();
  spliceUpgrade(ex, socket, head, ctx.connectApp(ctx.self, endpoint.address, endpoint.port), ctx.app.route.timeoutMs, null);
}

/** An upgrade request's response: never written (replies go to the raw socket), it only carries the exchange's 'close'. */
class UpgradeResponse extends EventEmitter {
  exchange: Exchange | null = null;
  readonly headersSent = false;
  shouldKeepAlive = false;
  writeHead(): void {}
  write(): boolean {
    return false;
  }
  end(): void {}
  addTrailers(): void {}
  destroy(): void {}
}

/** An exchange for an upgrade request: its response object is never sent; replies go to the raw socket. */
function upgradeExchange(deps: ExchangeDeps, req: ProxyRequest, socket: Socket): Exchange {
  const ex = new Exchange(deps, req, new UpgradeResponse());
  ex.upgradeSocket = socket;
  return ex;
}
