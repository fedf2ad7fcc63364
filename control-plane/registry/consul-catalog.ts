/**
 * Discovery from Consul's catalog, for `--consul`, on a bounded number of connections to the
 * agent whatever the number of services (the agent refuses one client address more than
 * `limits { http_max_conns_per_client }`, 200 by default): two blocking queries say what
 * changed, and only the services that changed are read, a few at a time (RefreshQueue).
 *
 * - `/v1/catalog/services` keeps the list of service names with their tags. A name that
 *   appears, or whose tags change, is read; one that goes is dropped. Its index also moves
 *   for what the list does not show (checked against Consul 1.16): a re-registration that
 *   moves an address or port or changes meta, which changes no check either; a move the list
 *   cannot attribute has every service read again. Such a move that comes in one answer with
 *   a change the list does show (two writes between two answers) cannot be told apart: the
 *   sweep below reads it.
 * - `/v1/health/state/any` lists every check with its ServiceName and ModifyIndex: a service
 *   whose checks changed (status, added, removed) is read again; a node check that changed
 *   (serfHealth) has every service read again, since it counts in all their healths.
 * - `/v1/health/service/<name>` (all instances, not only passing), a non-blocking read, gives a
 *   service's instances with their health.
 * - The sweep reads every service again once per `sweepMs`, one at a time evenly spread (the
 *   one whose last read was asked longest ago), so what neither list shows is followed within
 *   that bound at a steady N / sweepMs reads, not N reads per change. It pauses while the
 *   services list fails (Consul away), when every read would fail too.
 *
 * Used for `GET /api/v1/services` and for the endpoints of pushed snapshots: an instance's
 * health is its checks' as Consul aggregates them (`consulHealth`), and those in `passing` or
 * `warning` receive traffic, as in Consul's own mesh. The last known state survives Consul
 * outages and malformed answers. Consul accepts names Skein does not (`Redis_Cache`); those
 * are skipped with one warning each, since one of them in a snapshot would have every sidecar
 * refuse it, and every later one. An instance
 * registered without a port, or with an address or port a snapshot's endpoint cannot carry
 * (`http://10.0.0.5`, port 70000), is skipped the same way (one warning per instance id); the
 * service's other instances are kept. After an outage, a service that vanishes from the list
 * or is left without a passing or warning instance is kept as last known for the recovery hold
 * (RecoveryHold, the rule the sidecar's Consul source applies): a restarted agent lists
 * services only as their sidecars register again.
 */
import { serviceName } from '../../common/config/schema.js';
import { BlockingQuery, type BlockingAnswer, type BlockingRequest } from '../../common/consul/blocking-query.js';
import { describeConsulError, type ConsulConnection } from '../../common/consul/client.js';
import { RecoveryHold } from '../../common/consul/recovery-hold.js';
import type { Logger } from '../../common/log.js';
import { CONSUL_SWEEP_MS } from '../options.js';
import { aclFilteredWarner, consulHealth, endpointOf, healthRequest, MalformedConsulAnswer, portlessWarner, skippedInstanceWarner, type HealthEntry, type InvalidInstanceListener } from '../../sidecar/discovery/consul.js';
import type { Discovery, Instance } from './discovery.js';
import { RefreshQueue } from './refresh-queue.js';

interface ServiceWatch {
  readonly read: (req: BlockingRequest) => Promise<BlockingAnswer<HealthEntry[]>>;
  readonly warnInvalid: InvalidInstanceListener;
  instances: Instance[];
  readonly hold: RecoveryHold;
}

export interface ConsulCatalogOptions {
  /** After Consul comes back, how long a service it no longer lists, or lists without a passing or warning instance, is kept as last known. */
  readonly recoveryHoldMs?: number;
  /** How many services are read at once after a change (each read is one connection to the agent, beside the two blocking queries). */
  readonly readConcurrency?: number;
  /** The sweep's period: every service is read again within it, so no change stays unread longer. */
  readonly sweepMs?: number;
}

/** Reads at once after a change: with the two blocking queries, 6 connections to the agent. */
export const CATALOG_READ_CONCURRENCY = 4;

/** The longest a service's (non-blocking) health read may take. */
const READ_TIMEOUT_MS = 30_000;

/** What `/v1/health/state/any` says of one check, as read here. */
interface CheckState {
  readonly Node: string;
  readonly CheckID: string;
  readonly ServiceName: string;
  readonly ModifyIndex: number;
}

/** Instances that receive traffic (passing or warning): the count the recovery hold judges. */
const routed = (instances: readonly Instance[]): number => instances.filter((i) => i.health !== 'critical').length;

export class ConsulCatalog implements Discovery {
  private readonly services = new Map<string, ServiceWatch>();
  private readonly listeners = new Set<() => void>();
  private readonly names: BlockingQuery<Record<string, string[]>>;
  private readonly checks: BlockingQuery<CheckState[]>;
  private readonly reads: RefreshQueue<{ watch: ServiceWatch; entries: HealthEntry[] } | undefined>;
  /** Per service name ('' for node checks), its checks as last listed: a change has it read again. */
  private checkStates = new Map<string, string>();
  /** Per service name, its tags as the services list last gave them: a change has it read again. */
  private listed = new Map<string, string>();
  private sorted: readonly Instance[] | undefined;
  /** Services whose first health answer is still to come, and who waits for that. */
  private pending = new Set<string>();
  private namesKnown = false;
  /** Whether every service was read once: until then the instances are `unknown()`. */
  private read = false;
  /** The last failure to read the catalog, for `unknown()`. */
  private lastFailure: string | undefined;
  private readonly firstRead: Promise<void>;
  private markRead!: () => void;
  /** Catalog names that are not valid service names, each warned about once. */
  private readonly skipped = new Set<string>();
  private readonly namesHold: RecoveryHold;
  /** When a read of each service was last asked for (ms), oldest first: the sweep reads the first. */
  private readonly asked = new Map<string, number>();
  private readonly sweepMs: number;
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweepAt = 0;
  /** The services list fails (the agent away, most likely): the sweep waits, since its reads would fail too, each logged and retried on its own. */
  private listFailing = false;
  /**
   * A blocking query failed since Consul last answered one. The first answer of either ends
   * it and starts the recovery hold for every service: the other query may never have failed
   * (it waited in a blocking read through a short outage), and its news, read then, is as
   * suspect as the failed one's.
   */
  private away = false;
  private closed = false;

  constructor(
    private readonly consul: ConsulConnection,
    private readonly logger: Logger,
    private readonly options: ConsulCatalogOptions = {},
  ) {
    this.namesHold = new RecoveryHold(options.recoveryHoldMs);
    this.sweepMs = options.sweepMs ?? CONSUL_SWEEP_MS;
    this.firstRead = new Promise((resolve) => (this.markRead = resolve));
    this.reads = new RefreshQueue({
      concurrency: options.readConcurrency ?? CATALOG_READ_CONCURRENCY,
      read: async (name, ctx) => {
        const watch = this.services.get(name);
        // No cursor: an answer at once, as of now.
        return watch && { watch, entries: (await watch.read({ cursor: '', wait: '0s', timeoutMs: READ_TIMEOUT_MS, ctx })).data };
      },
      onRead: (name, read) => {
        if (read !== undefined && this.services.get(name) === read.watch) this.applyHealth(name, read.watch, read.entries);
      },
      onError: (name, err, attempt) => {
        this.services.get(name)?.hold.cancel();
        this.logError(err, attempt, name);
      },
      onRecovered: (name) => this.services.get(name)?.hold.recovered(),
    });
    this.names = new BlockingQuery({
      kind: 'index',
      request: async (req) => {
        const opts: Record<string, unknown> = { wait: req.wait, timeout: req.timeoutMs, ctx: req.ctx };
        if (req.cursor !== '') opts.index = req.cursor;
        const [res, data] = (await consul.client.catalog.service.list(opts as never)) as unknown as [{ headers: Record<string, string | undefined> }, unknown];
        if (data !== undefined && data !== null && (typeof data !== 'object' || Array.isArray(data))) {
          throw new MalformedConsulAnswer('/v1/catalog/services', 'a JSON object of service names', data);
        }
        return { data: (data ?? {}) as Record<string, string[]>, cursor: res.headers['x-consul-index'] };
      },
      onAnswer: (names) => {
        this.answered();
        this.namesHold.cancel();
        const changed = this.listChanges(names);
        this.syncNames(this.meshNames(Object.keys(names)));
        for (const name of changed ?? this.services.keys()) if (this.services.has(name)) this.mark(name);
      },
      onError: (err, attempt) => {
        this.listFailing = true;
        this.awayAgain(err, attempt, 'the service list');
      },
      onRecovered: () => {
        this.listFailing = false;
        this.recovered();
      },
    });
    this.checks = new BlockingQuery({
      kind: 'index',
      request: async (req) => {
        const opts: Record<string, unknown> = { state: 'any', wait: req.wait, timeout: req.timeoutMs, ctx: req.ctx };
        if (req.cursor !== '') opts.index = req.cursor;
        const [res, data] = (await consul.client.health.state(opts as never)) as unknown as [{ headers: Record<string, string | undefined> }, unknown];
        return { data: checkStates(data), cursor: res.headers['x-consul-index'] };
      },
      onAnswer: (checks) => {
        this.answered();
        this.syncChecks(checks);
      },
      onError: (err, attempt) => this.awayAgain(err, attempt, 'the health checks'),
      onRecovered: () => this.recovered(),
    });
  }

  /** Resolves once the catalog has been read once (or after `timeoutMs`), so the first snapshot is complete. */
  async synced(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.firstRead, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
  }

  known(): Promise<void> {
    return this.firstRead;
  }

  unknown(): string | undefined {
    if (this.read) return undefined;
    return `Consul's catalog at ${this.consul.url} has not been read since the control plane started${this.lastFailure ? ` (${this.lastFailure})` : ''}`;
  }

  instances(): readonly Instance[] {
    this.sorted ??= [...this.services.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .flatMap(([, w]) => w.instances);
    return this.sorted;
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.sweepTimer);
    this.listeners.clear();
    this.namesHold.cancel();
    for (const w of this.services.values()) w.hold.cancel();
    await Promise.all([this.names.stop(), this.checks.stop(), this.reads.stop()]);
    this.services.clear();
  }

  /** Names of Consul's catalog that can be mesh services; the others are skipped, each warned about once. */
  private meshNames(names: readonly string[]): string[] {
    return names.filter((name) => {
      if (name === 'consul') return false;
      if (serviceName.safeParse(name).success) return true;
      if (!this.skipped.has(name)) {
        this.skipped.add(name);
        this.logger.warn(
          { service: name },
          `Consul lists a service named ${JSON.stringify(name)}, which is not a valid Skein service name (a DNS label: lowercase letters, digits and "-", at most 63 characters); skipping it: the mesh neither routes to it nor pushes it to sidecars. Register it under a valid name to mesh it`,
        );
      }
      return false;
    });
  }

  private syncNames(names: readonly string[]): void {
    const wanted = new Set(names);
    let changed = false;
    const kept: string[] = [];
    for (const [name, watch] of this.services) {
      if (wanted.has(name)) continue;
      if (this.namesHold.keeps(routed(watch.instances), 0)) {
        kept.push(name);
        continue;
      }
      watch.hold.cancel();
      this.reads.forget(name);
      this.asked.delete(name);
      this.services.delete(name);
      this.pending.delete(name);
      changed = true;
    }
    for (const name of wanted) {
      if (this.services.has(name)) continue;
      this.pending.add(name);
      this.services.set(name, {
        read: healthRequest(this.consul, name, portlessWarner(this.logger, name), aclFilteredWarner(this.logger, name, this.consul.url)),
        warnInvalid: skippedInstanceWarner(this.logger, name, (id, why) =>
          `Consul lists instance ${JSON.stringify(id)} of ${name} with an endpoint sidecars would refuse (${why}); skipping it (the other instances are used). Register it with a plain IP address or host name and a port from 1 to 65535 to route to it`),
        instances: [],
        hold: new RecoveryHold(this.options.recoveryHoldMs),
      });
    }
    if (kept.length > 0) {
      this.logger.warn({ services: kept }, `Consul, just back, no longer lists ${kept.join(', ')}; keeping the last known instances while they register again`);
      // Consul answers again only on a change: if none comes, this list stands at the hold's end.
      this.namesHold.afterHold(() => this.syncNames(names));
    }
    this.namesKnown = true;
    this.settle(undefined);
    if (changed) this.changed();
    this.scheduleSweep();
  }

  /** Has `name` read (again), as of now or later: it goes to the end of the sweep's order. */
  private mark(name: string): void {
    this.reads.mark(name);
    this.asked.delete(name);
    this.asked.set(name, Date.now());
  }

  /**
   * Schedules the sweep's next read sweepMs / N from now, or sooner when the catalog grew
   * (never later, so a stream of changes cannot hold it off): read oldest first at that pace,
   * each of the N services comes round within sweepMs of its last read. A catalog that shrank
   * left fewer turns than it was paced for, so the oldest is also read by its due time.
   */
  private scheduleSweep(): void {
    if (this.closed) return;
    const now = Date.now();
    let delay = this.sweepMs / Math.max(1, this.services.size);
    const oldest = this.asked.values().next();
    if (!this.listFailing && !oldest.done) delay = Math.max(0, Math.min(delay, oldest.value + this.sweepMs - now));
    if (this.sweepTimer !== undefined && now + delay >= this.sweepAt) return;
    clearTimeout(this.sweepTimer);
    this.sweepAt = now + delay;
    this.sweepTimer = setTimeout(() => {
      this.sweepTimer = undefined;
      const oldest = this.asked.keys().next();
      if (!this.listFailing && !oldest.done) this.mark(oldest.value);
      this.scheduleSweep();
    }, delay);
    this.sweepTimer.unref();
  }

  /**
   * The names a services-list answer added or changed the tags of, since the last answer; or
   * undefined when it shows no change at all, so its index moved for a change it does not show
   * (an instance's address, port or meta), which could be any service's.
   */
  private listChanges(names: Record<string, string[]>): string[] | undefined {
    const next = new Map(Object.entries(names).map(([name, tags]) => [name, JSON.stringify([...(tags ?? [])].sort())]));
    const changed = [...next].filter(([name, tags]) => this.listed.get(name) !== tags).map(([name]) => name);
    const gone = [...this.listed.keys()].some((name) => !next.has(name));
    this.listed = next;
    return changed.length > 0 || gone ? changed : undefined;
  }

  /**
   * Has every service whose checks changed since the last answer read again. A service first
   * seen here counts as changed: its read may have come before the change this answer shows.
   */
  private syncChecks(checks: readonly CheckState[]): void {
    const grouped = new Map<string, string[]>();
    for (const c of checks) {
      const list = grouped.get(c.ServiceName) ?? [];
      list.push(`${c.Node}/${c.CheckID}@${c.ModifyIndex}`);
      grouped.set(c.ServiceName, list);
    }
    const next = new Map([...grouped].map(([name, list]) => [name, list.sort().join(' ')]));
    const changed = [...new Set([...next.keys(), ...this.checkStates.keys()])].filter((name) => next.get(name) !== this.checkStates.get(name));
    this.checkStates = next;
    const all = changed.includes('');
    for (const name of all ? this.services.keys() : changed) if (this.services.has(name)) this.mark(name);
  }

  private applyHealth(name: string, watch: ServiceWatch, entries: readonly HealthEntry[]): void {
    this.settle(name);
    const next = instancesOf(name, entries, watch.warnInvalid);
    if (JSON.stringify(next) === JSON.stringify(watch.instances)) return watch.hold.cancel();
    const before = routed(watch.instances);
    const apply = (): void => {
      watch.instances = next;
      this.changed();
    };
    if (watch.hold.offer(before, routed(next), apply)) {
      this.logger.warn({ service: name, kept: before }, `Consul, just back, lists no passing or warning instance of ${name}; keeping the last known instances while they register again`);
    }
  }

  /** Consul is away again: nothing held from its last return is applied meanwhile (the next return judges afresh). */
  private awayAgain(err: unknown, attempt: number, what: string): void {
    this.away = true;
    this.namesHold.cancel();
    for (const w of this.services.values()) w.hold.cancel();
    this.logError(err, attempt, what);
  }

  private answered(): void {
    if (this.away) this.recovered();
  }

  private recovered(): void {
    this.away = false;
    this.namesHold.recovered();
    for (const w of this.services.values()) w.hold.recovered();
  }

  private settle(service: string | undefined): void {
    if (service !== undefined) this.pending.delete(service);
    if (!this.namesKnown || this.pending.size > 0) return;
    if (!this.read) {
      this.read = true;
      this.markRead();
      this.changed();
    }
  }

  private logError(err: unknown, attempt: number, what: string): void {
    const described = describeConsulError(err, this.consul);
    if (!this.read) this.lastFailure = `reading ${what}: ${described}`;
    if (attempt === 1 || attempt % 20 === 0) {
      this.logger.error({ attempt }, `watching ${what} in Consul failed: ${described}; keeping the last known instances and retrying`);
    }
  }

  private changed(): void {
    this.sorted = undefined;
    for (const listener of this.listeners) listener();
  }
}

/** The checks of a `/v1/health/state/any` answer, checked for the fields read here. */
function checkStates(data: unknown): CheckState[] {
  if (data === undefined || data === null) return [];
  if (!Array.isArray(data)) throw new MalformedConsulAnswer('/v1/health/state/any', 'a JSON array of checks', data);
  for (const check of data as unknown[]) {
    const c = check as Partial<Record<keyof CheckState, unknown>> | null;
    if (typeof c?.Node !== 'string' || typeof c.CheckID !== 'string' || typeof c.ServiceName !== 'string' || typeof c.ModifyIndex !== 'number') {
      throw new MalformedConsulAnswer('/v1/health/state/any', 'checks with Node, CheckID, ServiceName and ModifyIndex', check);
    }
  }
  return data as CheckState[];
}

/**
 * Instances of one health answer: labels as the sidecar sees them, health from the checks.
 * Snapshots are not re-validated when published, so an instance is checked here against the
 * schema sidecars validate endpoints with: one they would refuse is left out, with
 * `onInvalid(id, why)` called, rather than have every sidecar refuse every later snapshot.
 */
export function instancesOf(service: string, entries: readonly HealthEntry[], onInvalid?: InvalidInstanceListener): Instance[] {
  return entries
    .map((entry) => {
      const found = endpointOf(entry, onInvalid);
      if (found === undefined) return undefined;
      const health = consulHealth(entry);
      const instance: Instance = {
        service,
        id: entry.Service.ID,
        address: found.address,
        port: found.port,
        protocol: found.labels.protocol === 'grpc' ? 'grpc' : 'http',
        labels: found.labels,
        health: health === 'passing' ? 'healthy' : health,
      };
      return instance;
    })
    .filter((i): i is Instance => i !== undefined)
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}
