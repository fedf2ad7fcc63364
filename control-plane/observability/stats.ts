/**
 * Golden metrics for the whole mesh, from the sidecars' `Telemetry{kind:"stats"}` deltas:
 * each edge (direction, source, destination, subset) keeps one slot per second for the
 * last minute, and `GET /api/v1/stats` sums the slots of a 10 s and a 1 min window.
 * Windows are made of complete seconds: sidecars report once a second, so the second in
 * progress holds a report from some sidecars and none from others, and counting it would
 * make a steady rate swing by up to a tenth in the 10 s window.
 *
 * A service's figures are what its own sidecars saw inbound (every caller together); an
 * edge source → destination is what the source's sidecars saw outbound, so it counts the
 * answers the caller got (after retries), including those the sidecar made itself. A
 * service that no sidecar serves inbound (e.g. one outside the mesh) is shown from its
 * callers' side; NO_ROUTE, where callers count requests that named no known service, is not one.
 */
import { UNNAMED_PEER, type BreakerState, type EdgeDelta, type EjectionState, type StatsMessage } from '../../common/proto/telemetry.js';
import { Tally, type Golden } from './golden.js';

/**
 * The destination of the requests a caller's sidecar answered itself because they named no
 * service its snapshot knows: no service can be named so (service names are DNS labels), so a
 * service really named `unknown` keeps its own row and edges. Sidecars send these as
 * UNNAMED_PEER; `destinationOf` is the one place that tells them apart.
 */
export const NO_ROUTE = '(no-route)';

export const WINDOWS = { '10s': 10, '1m': 60 } as const;
export type WindowName = keyof typeof WINDOWS;
/** The longest window, and the second in progress beside it. */
const SLOTS = WINDOWS['1m'] + 1;
/** Series without traffic for this long are forgotten. */
const FORGET_MS = 5 * 60_000;
/** Breaker states and ejections a sidecar has not repeated for this long are stale. */
const REPORT_TTL_MS = 30_000;

interface Slot {
  second: number;
  requests: number;
  failures: number;
  sumSeconds: number;
  buckets: number[];
}

interface Series {
  readonly direction: 'inbound' | 'outbound';
  readonly source: string;
  readonly destination: string;
  readonly subset: string;
  readonly slots: (Slot | undefined)[];
  lastSeen: number;
}

export type WindowedGolden = Record<WindowName, Golden>;

export interface SubsetStats extends WindowedGolden {
  subset: string;
}

export interface ServiceStats extends WindowedGolden {
  service: string;
  /** Where the figures come from: the service's own sidecars (inbound) or its callers' (outbound). */
  seenFrom: 'inbound' | 'outbound';
  subsets: SubsetStats[];
}

export interface EdgeStats extends WindowedGolden {
  source: string;
  destination: string;
  subsets: SubsetStats[];
}

export interface BreakerView extends BreakerState {
  /** The service and instance whose sidecar holds the breaker. */
  service: string;
  instance: string;
}

/** An endpoint a caller's sidecar holds ejected by outlier detection: it balances around it until `until`. */
export interface EjectionView {
  /** The service and instance whose sidecar ejected it. */
  service: string;
  instance: string;
  destination: string;
  /** `address:port`. */
  endpoint: string;
  /** ISO 8601. */
  since: string;
  until: string;
  reason?: string;
}

export interface StatsView {
  generatedAt: string;
  windows: WindowName[];
  /** Upper bounds (ms) of the latency buckets: the resolution of every percentile. */
  bucketBoundsMs: number[];
  services: ServiceStats[];
  edges: EdgeStats[];
  breakers: BreakerView[];
  /** Endpoints callers' sidecars hold ejected now. */
  ejections: EjectionView[];
}

/** What one sidecar last said it holds: its breakers not closed, and the endpoints it ejected. */
interface SidecarReport {
  readonly at: number;
  readonly service: string;
  readonly instance: string;
  readonly states: readonly BreakerState[];
  readonly ejections: readonly EjectionState[];
}

export interface Reporter {
  readonly id: string;
  readonly service: string;
  readonly instanceId: string;
}

/**
 * A canary step's window on one subset of a service (StatsAggregator.openWindow): what the
 * reports taken since it opened counted, however long it runs, where the per-second slots keep
 * a minute.
 */
export interface StepWindow {
  /**
   * The subset's golden metrics in the window so far, over `seconds`: seen from its callers'
   * sidecars, as callers got it (answers a caller's sidecar made itself, such as circuit-open,
   * included), or inbound when no caller reports.
   */
  measure(seconds: number): Golden;
  /** Stops taking reports. */
  close(): void;
}

interface OpenWindow {
  readonly destination: string;
  readonly subset: string;
  /** The step's snapshot version: reports whose interval began under it or a later one count. */
  readonly snapshot: number;
  /** When reports that do not say their snapshot (older sidecars) start to count, in ms. */
  readonly unversionedFrom: number;
  /** Created at the first report taken, with as many buckets as it has (before any, `bounds` may be unknown). */
  outbound?: Tally;
  inbound?: Tally;
}

export class StatsAggregator {
  private readonly series = new Map<string, Series>();
  /**
   * The subsets (`destination\0subset`) callers' sidecars have counted requests to: a step's window
   * on one of them is measured from the callers' side, never forgotten.
   */
  private readonly calledFromSidecars = new Set<string>();
  /** Each sidecar's last report of its breakers and ejections, by stream. */
  private readonly reports = new Map<string, SidecarReport>();
  /** The canary steps' windows open now. */
  private readonly windows = new Set<OpenWindow>();
  private bounds: readonly number[] = [];

  constructor(private readonly now: () => number = Date.now) {}

  ingest(from: Reporter, message: StatsMessage): void {
    const now = this.now();
    if (message.bounds.length > 0) this.bounds = message.bounds;
    const windows = [...this.windows].filter((w) => takes(w, message.fromSnapshot, now));
    for (const edge of message.edges) this.add(edge, now, windows);
    // A message without a list of breakers (not one a Skein sidecar sends) would fail every view until it is stale.
    const states = Array.isArray(message.breakers) ? message.breakers : [];
    this.reports.set(from.id, { at: now, service: from.service, instance: from.instanceId, states, ejections: readableEjections(message.ejections) });
  }

  /**
   * A sidecar that shut down holds no breaker or ejection any more: its last report's are
   * dropped at once, not shown for REPORT_TTL_MS. One whose stream broke keeps them until then
   * (it may be back, breakers and all).
   */
  goodbye(from: Pick<Reporter, 'id'>): void {
    this.reports.delete(from.id);
  }

  view(filter?: { service?: string }): StatsView {
    const now = this.now();
    this.forget(now);
    const second = Math.floor(now / 1000);
    const inbound = new Map<string, Map<string, Series[]>>();
    const outbound = new Map<string, Map<string, Series[]>>();
    for (const s of this.series.values()) {
      const key = s.direction === 'inbound' ? s.destination : `${s.source}\0${s.destination}`;
      const groups = s.direction === 'inbound' ? inbound : outbound;
      let bySubset = groups.get(key);
      if (!bySubset) groups.set(key, (bySubset = new Map()));
      let list = bySubset.get(s.subset);
      if (!list) bySubset.set(s.subset, (list = []));
      list.push(s);
    }
    const services: ServiceStats[] = [];
    for (const [service, bySubset] of inbound) services.push({ service, seenFrom: 'inbound', ...this.windowed(bySubset, second) });
    const callerSide = new Map<string, Map<string, Series[]>>();
    for (const [key, bySubset] of outbound) {
      const destination = key.split('\0')[1]!;
      // Requests that named no known service stay on their callers' edges, but make no service.
      if (inbound.has(destination) || destination === NO_ROUTE) continue;
      let merged = callerSide.get(destination);
      if (!merged) callerSide.set(destination, (merged = new Map()));
      for (const [subset, list] of bySubset) merged.set(subset, [...(merged.get(subset) ?? []), ...list]);
    }
    for (const [service, bySubset] of callerSide) services.push({ service, seenFrom: 'outbound', ...this.windowed(bySubset, second) });
    const edges: EdgeStats[] = [...outbound].map(([key, bySubset]) => {
      const [source, destination] = key.split('\0') as [string, string];
      return { source, destination, ...this.windowed(bySubset, second) };
    });
    const wanted = filter?.service;
    const breakers = this.liveBreakers(now);
    const ejections = this.liveEjections(now);
    return {
      generatedAt: new Date(now).toISOString(),
      windows: Object.keys(WINDOWS) as WindowName[],
      bucketBoundsMs: this.bounds.map((b) => b * 1000),
      services: services.filter((s) => !wanted || s.service === wanted).sort((a, b) => a.service.localeCompare(b.service)),
      edges: edges
        .filter((e) => !wanted || e.source === wanted || e.destination === wanted)
        .sort((a, b) => a.source.localeCompare(b.source) || a.destination.localeCompare(b.destination)),
      breakers: breakers.filter((b) => !wanted || b.service === wanted || b.destination === wanted),
      ejections: ejections.filter((e) => !wanted || e.service === wanted || e.destination === wanted),
    };
  }

  /** The breakers callers' sidecars hold for `destination` that are not closed, as they last reported them. */
  breakersTo(destination: string): BreakerView[] {
    return this.liveBreakers(this.now()).filter((b) => b.destination === destination && b.state !== 'closed');
  }

  /** The endpoints of `destination` callers' sidecars hold ejected, as they last reported them. */
  ejectionsTo(destination: string): EjectionView[] {
    return this.liveEjections(this.now()).filter((e) => e.destination === destination);
  }

  /** The sidecars' reports repeated within REPORT_TTL_MS: what they hold now. */
  private *liveReports(now: number): Iterable<SidecarReport> {
    for (const r of this.reports.values()) if (now - r.at <= REPORT_TTL_MS) yield r;
  }

  private liveBreakers(now: number): BreakerView[] {
    const breakers: BreakerView[] = [];
    for (const b of this.liveReports(now)) for (const s of b.states) breakers.push({ service: b.service, instance: b.instance, ...s });
    return breakers;
  }

  /** Ejections whose end has passed are over, whether or not their sidecar has said so yet. */
  private liveEjections(now: number): EjectionView[] {
    const ejections: EjectionView[] = [];
    for (const r of this.liveReports(now)) {
      for (const e of r.ejections) {
        if (e.until <= now) continue;
        ejections.push({
          service: r.service,
          instance: r.instance,
          destination: e.destination,
          endpoint: e.endpoint,
          since: new Date(e.since).toISOString(),
          until: new Date(e.until).toISOString(),
          ...(e.reason ? { reason: e.reason } : {}),
        });
      }
    }
    return ejections;
  }

  /**
   * Opens a canary step's window on one subset of a service, whose split sidecars were sent in
   * snapshot `snapshot`: it takes only reports whose interval began under that snapshot or a
   * later one (StatsMessage.fromSnapshot), so no request routed by the step before counts, however
   * late its report comes. A report that does not say (a sidecar older than the field) is taken
   * when it arrives at `unversionedFrom` (ms) or later.
   */
  openWindow(service: string, subset: string, snapshot: string, unversionedFrom: number): StepWindow {
    const window: OpenWindow = { destination: service, subset, snapshot: Number(snapshot), unversionedFrom };
    this.windows.add(window);
    return {
      measure: (seconds) => {
        const direction = this.calledFromSidecars.has(`${service}\0${subset}`) ? 'outbound' : 'inbound';
        return (window[direction] ?? new Tally(this.bounds.length + 1)).golden(Math.max(1, seconds), this.bounds);
      },
      close: () => void this.windows.delete(window),
    };
  }

  private windowed(bySubset: Map<string, Series[]>, second: number): WindowedGolden & { subsets: SubsetStats[] } {
    const subsets: SubsetStats[] = [];
    const totals = this.tallies();
    for (const [subset, list] of [...bySubset].sort(([a], [b]) => a.localeCompare(b))) {
      const own = this.tallies();
      for (const s of list) for (const name of Object.keys(WINDOWS) as WindowName[]) this.sum(s, second, WINDOWS[name], own[name], totals[name]);
      subsets.push({ subset, ...this.goldens(own) });
    }
    return { ...this.goldens(totals), subsets };
  }

  private tallies(): Record<WindowName, Tally> {
    const n = this.bounds.length + 1;
    return { '10s': new Tally(n), '1m': new Tally(n) };
  }

  private goldens(t: Record<WindowName, Tally>): WindowedGolden {
    return { '10s': t['10s'].golden(WINDOWS['10s'], this.bounds), '1m': t['1m'].golden(WINDOWS['1m'], this.bounds) };
  }

  /** Adds the series' slots of the `seconds` complete seconds before `second` (the one in progress) to both tallies. */
  private sum(s: Series, second: number, seconds: number, own: Tally, total: Tally): void {
    for (const slot of s.slots) {
      if (slot === undefined || slot.second < second - seconds || slot.second >= second) continue;
      own.add(slot);
      total.add(slot);
    }
  }

  private add(edge: EdgeDelta, now: number, windows: readonly OpenWindow[]): void {
    const destination = destinationOf(edge);
    const key = `${edge.direction}\0${edge.source}\0${destination}\0${edge.subset}`;
    let s = this.series.get(key);
    if (!s) {
      s = { direction: edge.direction, source: edge.source, destination, subset: edge.subset, slots: new Array(SLOTS), lastSeen: now };
      this.series.set(key, s);
    }
    s.lastSeen = now;
    const second = Math.floor(now / 1000);
    const index = second % SLOTS;
    let slot = s.slots[index];
    if (slot === undefined || slot.second !== second) {
      slot = { second, requests: 0, failures: 0, sumSeconds: 0, buckets: new Array<number>(edge.buckets.length).fill(0) };
      s.slots[index] = slot;
    }
    const requests = edge.classes.reduce((a, b) => a + b, 0);
    const counted = { requests, failures: Math.min(requests, (edge.classes[4] ?? 0) + edge.grpcFailures), sumSeconds: edge.sumSeconds, buckets: edge.buckets };
    if (edge.direction === 'outbound') this.calledFromSidecars.add(`${destination}\0${edge.subset}`);
    for (const w of windows) if (w.destination === destination && w.subset === edge.subset) (w[edge.direction] ??= new Tally(edge.buckets.length)).add(counted);
    slot.requests += requests;
    slot.failures += counted.failures;
    slot.sumSeconds += edge.sumSeconds;
    for (let i = 0; i < edge.buckets.length && i < slot.buckets.length; i++) slot.buckets[i]! += edge.buckets[i]!;
  }

  private forget(now: number): void {
    for (const [key, s] of this.series) if (now - s.lastSeen > FORGET_MS) this.series.delete(key);
    for (const [id, r] of this.reports) if (now - r.at > FORGET_MS) this.reports.delete(id);
  }
}

/**
 * Whether a report counts in a step's window: its interval began under the step's snapshot or a
 * later one; one from a sidecar that does not say, if it arrived once unversioned reports count.
 */
function takes(window: OpenWindow, fromSnapshot: unknown, now: number): boolean {
  if (fromSnapshot === undefined) return now >= window.unversionedFrom;
  // '' (no snapshot yet), or not a version at all (NaN): routed by none the step knows.
  return typeof fromSnapshot === 'string' && fromSnapshot !== '' && Number(fromSnapshot) >= window.snapshot;
}

/**
 * The ejections of a stats message that can be shown: none from a sidecar older than the field,
 * and none that a sidecar of another version sent in a shape this one cannot date (a time that
 * is no number would fail every later view of the stats and of explain, not only its own).
 */
function readableEjections(ejections: unknown): EjectionState[] {
  if (!Array.isArray(ejections)) return [];
  return ejections.filter(
    (e: Partial<EjectionState> | null): e is EjectionState =>
      typeof e === 'object' && e !== null && typeof e.destination === 'string' && typeof e.endpoint === 'string' &&
      Number.isFinite(e.since) && Number.isFinite(e.until) && (e.reason === undefined || typeof e.reason === 'string'),
  );
}

/**
 * The destination an edge is kept under. The wire keeps what sidecars have always sent (so a
 * sidecar and a control plane of different versions still agree): a request a sidecar answered
 * before choosing a subset, for a name its snapshot does not know, counts outbound under
 * UNNAMED_PEER with no subset. A routed request always has one (a split's, or `*` for every
 * endpoint), so an edge to a service really named `unknown` is told apart by it; only that
 * service's requests that matched none of its rules, which its callers' sidecars count alike
 * (under its name, with no subset), are taken for NO_ROUTE too.
 */
function destinationOf(edge: EdgeDelta): string {
  return edge.direction === 'outbound' && edge.destination === UNNAMED_PEER && edge.subset === '' ? NO_ROUTE : edge.destination;
}
