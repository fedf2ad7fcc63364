/**
 * Consul discovery: one blocking query on `/v1/health/service/<name>` per destination the
 * sidecar routes to, started when the mesh first watches that destination and stopped when its
 * last watcher leaves (one per destination and `onlyPassing`). Each answer becomes the whole
 * endpoint set: the instances Consul's own service mesh sends traffic to, those in `passing` or
 * `warning` (`consulHealth`; a `critical` check, maintenance mode included, leaves the instance
 * out; with `onlyPassing`, `warning` does too), each with the address and port it registered
 * and labels from its service meta plus `tag:<tag>` for each tag. Watchers hear only about sets
 * that actually changed. An instance without a port, or with an address or port no connection
 * can be made to, is skipped with one warning per instance id, the rule the control plane's
 * catalog applies. Errors keep the last known set, and so does an empty answer within
 * `recoveryHoldMs` of an outage (RecoveryHold, shared with the control plane's catalog).
 */
import { zodProblems } from '../../common/config/parse.js';
import { endpoint, type Endpoint } from '../../common/config/schema.js';
import { BlockingQuery, type BlockingAnswer, type BlockingRequest } from '../../common/consul/blocking-query.js';
import { describeConsulError, type ConsulConnection } from '../../common/consul/client.js';
import { RecoveryHold } from '../../common/consul/recovery-hold.js';
import type { Logger } from '../../common/log.js';
import { endpointKey } from '../cluster/upstream-endpoint.js';
import type { EndpointListener, EndpointSource, WatchOptions } from './source.js';

/** One entry of `/v1/health/service/<name>`, the fields used here. */
export interface HealthEntry {
  readonly Node?: { readonly Address?: string };
  readonly Service: {
    readonly ID: string;
    readonly Address?: string;
    readonly Port: number;
    readonly Tags?: readonly string[] | null;
    readonly Meta?: Readonly<Record<string, string>> | null;
    /** Raft index of the registration: the larger, the newer. */
    readonly CreateIndex?: number;
  };
  readonly Checks?: readonly { readonly Status: string }[];
}

/** An instance's health as Consul aggregates its checks. */
export type ConsulHealth = 'passing' | 'warning' | 'critical';

/**
 * The worst of an entry's checks (its node's `serfHealth` included, which Consul lists with
 * them), as Consul's service mesh and DNS read them: an instance in `warning` still receives
 * traffic and only `critical` drops it (Consul's xDS marks an endpoint unhealthy for a
 * critical check alone, unless a service-resolver subset says `OnlyPassing`). Maintenance
 * mode is a critical check (`_service_maintenance:<id>`, `_node_maintenance`); a status
 * Consul may add later counts as critical rather than route to something unknown.
 */
export function consulHealth(entry: HealthEntry): ConsulHealth {
  let health: ConsulHealth = 'passing';
  for (const check of entry.Checks ?? []) {
    if (check.Status === 'warning') health = 'warning';
    else if (check.Status !== 'passing') return 'critical';
  }
  return health;
}

/**
 * Whether an instance in `health` receives traffic: in `passing` or `warning`, or with
 * `onlyPassing` (a Consul service-resolver's `OnlyPassing`) in `passing` alone.
 */
export function receivesTraffic(health: ConsulHealth, onlyPassing = false): boolean {
  return health === 'passing' || (health === 'warning' && !onlyPassing);
}

export interface ConsulSourceOptions {
  readonly waitMs?: number;
  readonly backoffMaxMs?: number;
  /** After Consul comes back, how long an empty answer is taken for a registry still refilling. */
  readonly recoveryHoldMs?: number;
}

interface Watch {
  readonly listeners: Set<EndpointListener>;
  readonly query: BlockingQuery<HealthEntry[]>;
  key: string | undefined;
  endpoints: readonly Endpoint[] | undefined;
  readonly hold: RecoveryHold;
}

/** Called with the id of an instance left out of an answer, and why. */
export type InvalidInstanceListener = (id: string, why: string) => void;

/**
 * The endpoint of one health entry: the registered instance's address (the node's when it has
 * none) and port, labels from its meta and tags. Consul's agent accepts registrations no
 * connection can be made to (`"Port": 70000`, `"Address": "http://10.0.0.5"`), so the entry is
 * held to the endpoint schema snapshots' endpoints are held to; one that fails it is none,
 * and `onInvalid(id, why)` says why.
 */
export function endpointOf(entry: HealthEntry, onInvalid?: InvalidInstanceListener): Endpoint | undefined {
  const labels: Record<string, string> = { ...(entry.Service.Meta ?? {}) };
  for (const tag of entry.Service.Tags ?? []) labels[`tag:${tag}`] = 'true';
  const checked = endpoint.safeParse({ address: entry.Service.Address || entry.Node?.Address || '', port: entry.Service.Port, labels });
  if (checked.success) return checked.data;
  onInvalid?.(entry.Service.ID, zodProblems(checked.error).join('; '));
  return undefined;
}

/**
 * Endpoints of a health answer, sorted so equal sets compare equal, one per address and port:
 * two instances listed there (a sidecar restarted under a new instance id before Consul reaps
 * the old one) are one endpoint to connect to, not two picks of the balancer. The newest
 * registration's labels win, since a restart may have changed its version.
 */
export function endpointsOf(entries: readonly HealthEntry[], onInvalid?: InvalidInstanceListener): Endpoint[] {
  const newest = new Map<string, { endpoint: Endpoint; created: number }>();
  for (const entry of entries) {
    const found = endpointOf(entry, onInvalid);
    if (found === undefined) continue;
    const key = endpointKey(found.address, found.port);
    const created = entry.Service.CreateIndex ?? 0;
    const held = newest.get(key);
    if (held === undefined || created > held.created) newest.set(key, { endpoint: found, created });
  }
  return [...newest.values()].map((e) => e.endpoint).sort((a, b) => (a.address === b.address ? a.port - b.port : a.address < b.address ? -1 : 1));
}

/**
 * `GET /v1/health/service/<name>` (every instance, with its checks) as a blocking request
 * through the consul client. Not `?passing`: that leaves out instances in `warning` too, which
 * Consul's own mesh still routes to.
 * `onFiltered` is called for each answer Consul says it left entries out of because the ACL
 * token may not read them (`X-Consul-Results-Filtered-By-ACLs`): with ACLs on, a token without
 * `node:read` gets every instance hidden, an empty answer with a 200 rather than a 403.
 */
export function healthRequest(consul: ConsulConnection, service: string, onPortless?: (id: string) => void, onFiltered?: () => void) {
  return async (req: BlockingRequest): Promise<BlockingAnswer<HealthEntry[]>> => {
    const opts: Record<string, unknown> = { service, wait: req.wait, timeout: req.timeoutMs, ctx: req.ctx };
    if (req.cursor !== '') opts.index = req.cursor;
    const [res, data] = (await consul.client.health.service(opts as never)) as unknown as [{ headers: Record<string, string | undefined> }, unknown];
    if (res.headers['x-consul-results-filtered-by-acls'] === 'true') onFiltered?.();
    return { data: healthEntries(service, data, onPortless), cursor: res.headers['x-consul-index'] };
  };
}

/**
 * Warns once (per destination) that Consul's answers leave instances out for the ACL token's
 * sake: nothing else would say why a service registered and passing in Consul has no endpoints.
 */
export function aclFilteredWarner(logger: Logger, service: string, url: string): () => void {
  let warned = false;
  return () => {
    if (warned) return;
    warned = true;
    logger.warn(
      { service },
      `Consul at ${url} leaves instances of ${service} out of its answers because the ACL token may not read them (X-Consul-Results-Filtered-By-ACLs); they are not routed to. Give the token (CONSUL_HTTP_TOKEN) service:read on ${service} and node:read on their nodes, e.g. service_prefix "" { policy = "read" } and node_prefix "" { policy = "read" }`,
    );
  };
}

/**
 * The entries of a health answer, checked for the fields read here: a body that is not a
 * list of entries is an error of that request (the watch keeps its last good answer and
 * retries), never an exception in whoever reads the answer. An instance registered without
 * a port (Consul allows it and then omits `Port`) cannot be routed to: it is left out of the
 * answer, with `onPortless(id)` called, and the other instances are kept, so one such
 * registration never freezes the whole service's endpoints.
 */
export function healthEntries(service: string, data: unknown, onPortless?: (id: string) => void): HealthEntry[] {
  if (data === undefined || data === null) return [];
  if (!Array.isArray(data)) throw new MalformedConsulAnswer(`/v1/health/service/${service}`, 'a JSON array of entries', data);
  const entries: HealthEntry[] = [];
  for (const entry of data as unknown[]) {
    const svc = (entry as { Service?: unknown } | null)?.Service as { ID?: unknown; Port?: unknown } | undefined;
    if (typeof svc !== 'object' || svc === null || typeof svc.ID !== 'string') {
      throw new MalformedConsulAnswer(`/v1/health/service/${service}`, 'entries with Service.ID', entry);
    }
    if (typeof svc.Port !== 'number') {
      onPortless?.(svc.ID);
      continue;
    }
    entries.push(entry as HealthEntry);
  }
  return entries;
}

/** Warns once per instance id about instances registered without a port, for `healthEntries`. */
export function portlessWarner(logger: Logger, service: string): (id: string) => void {
  return skippedInstanceWarner(logger, service, (id) => `Consul lists instance ${JSON.stringify(id)} of ${service} without a port; skipping it (the other instances are used). Register it with a Port to route to it`);
}

/**
 * Warns about an instance left out of a service's answers once per instance id: the same
 * registration comes back in every answer, and one line per answer would bury the log.
 */
export function skippedInstanceWarner(logger: Logger, service: string, message: (id: string, why: string) => string): (id: string, why?: string) => void {
  const warned = new Set<string>();
  return (id, why = '') => {
    if (warned.has(id)) return;
    warned.add(id);
    logger.warn({ service, instance: id }, message(id, why));
  };
}

/** Consul answered 200 with a body of the wrong shape (a proxy in between, a broken agent). */
export class MalformedConsulAnswer extends Error {
  constructor(path: string, expected: string, got: unknown) {
    const sample = JSON.stringify(got) ?? String(got);
    super(`Consul's answer to ${path} is malformed: expected ${expected}, got ${sample.length > 80 ? `${sample.slice(0, 80)}…` : sample}`);
    this.name = 'MalformedConsulAnswer';
  }
}

export class ConsulEndpointSource implements EndpointSource {
  private readonly watches = new Map<string, Watch>();

  constructor(
    private readonly consul: ConsulConnection,
    private readonly logger: Logger,
    private readonly options: ConsulSourceOptions = {},
  ) {}

  watch(service: string, listener: EndpointListener, options: WatchOptions = {}): () => void {
    const onlyPassing = options.onlyPassing === true;
    // Watchers that differ in onlyPassing hear different sets: one query each.
    const id = onlyPassing ? `${service}?passing` : service;
    let watch = this.watches.get(id);
    if (watch === undefined) {
      watch = this.start(service, onlyPassing);
      this.watches.set(id, watch);
    } else if (watch.endpoints !== undefined) {
      listener(watch.endpoints);
    }
    watch.listeners.add(listener);
    const joined = watch;
    return () => {
      joined.listeners.delete(listener);
      if (joined.listeners.size === 0 && this.watches.get(id) === joined) {
        this.watches.delete(id);
        joined.hold.cancel();
        void joined.query.stop();
      }
    };
  }

  async close(): Promise<void> {
    const all = [...this.watches.values()];
    this.watches.clear();
    for (const w of all) w.hold.cancel();
    await Promise.all(all.map((w) => w.query.stop()));
  }

  private start(service: string, onlyPassing: boolean): Watch {
    const log = this.logger.child({ consul: this.consul.url, destination: service });
    const warnInvalid = skippedInstanceWarner(log, service, (id, why) =>
      `Consul lists instance ${JSON.stringify(id)} of ${service} with an endpoint no connection can be made to (${why}); skipping it (the other instances are used). Register it with a plain IP address or host name and a port from 1 to 65535 to route to it`);
    const apply = (key: string, endpoints: readonly Endpoint[]): void => {
      watch.key = key;
      watch.endpoints = endpoints;
      log.info({ endpoints: endpoints.length }, 'endpoints from Consul');
      for (const listener of watch.listeners) listener(endpoints);
    };
    const watch: Watch = {
      listeners: new Set(),
      key: undefined,
      endpoints: undefined,
      hold: new RecoveryHold(this.options.recoveryHoldMs),
      query: new BlockingQuery<HealthEntry[]>({
        kind: 'index',
        request: healthRequest(this.consul, service, portlessWarner(log, service), aclFilteredWarner(log, service, this.consul.url)),
        waitMs: this.options.waitMs,
        backoffMaxMs: this.options.backoffMaxMs,
        onAnswer: (entries) => {
          const endpoints = endpointsOf(entries.filter((e) => receivesTraffic(consulHealth(e), onlyPassing)), warnInvalid);
          const key = JSON.stringify(endpoints);
          if (key === watch.key) return watch.hold.cancel();
          if (watch.hold.offer(watch.endpoints?.length ?? 0, endpoints.length, () => apply(key, endpoints))) {
            log.warn({ kept: watch.endpoints!.length }, `Consul, just back, lists no ${onlyPassing ? 'passing' : 'passing or warning'} instance of ${service}; keeping the last known endpoints while instances register again`);
          }
        },
        onError: (err, attempt, delayMs) => {
          // Consul is away again: an answer held from its last return is not applied meanwhile (the next return judges afresh).
          watch.hold.cancel();
          // The first failure is an error; repeats are rarer reminders, not one line per retry.
          if (attempt === 1 || attempt % 20 === 0) {
            log.error({ attempt, retryInMs: Math.round(delayMs), kept: watch.endpoints?.length ?? 0 }, `watching ${service} in Consul failed: ${describeConsulError(err, this.consul)}; keeping the last known endpoints and retrying`);
          }
        },
        onRecovered: (failures) => {
          watch.hold.recovered();
          log.info({ failures }, `watching ${service} in Consul again`);
        },
      }),
    };
    return watch;
  }
}
