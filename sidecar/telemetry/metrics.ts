/**
 * The sidecar's Prometheus metrics (SPEC §7), in a registry of its own (no global state, so
 * several sidecars can live in one test process), plus prom-client's default process metrics.
 *
 * The two per-request series (`skein_requests_total` and `skein_request_duration_seconds`)
 * do not go through prom-client's `labels(...).inc()`/`observe()`, which hash and validate a
 * label object on every call. Instead `edge(direction, source, destination, subset)` hands
 * out a handle, resolved once per edge, that counts into typed arrays indexed by status
 * code and latency bucket; a collector registered in the same registry turns those arrays
 * into Prometheus series when /metrics is scraped (formatting stays prom-client's). The rare
 * events (retries, rejections, ejections, denials...) use plain prom-client metrics.
 *
 * Label scheme: `skein_requests_total` carries an extra `grpc_status` label, the
 * `grpc-status` of gRPC requests (0–16; anything else counts as 2, UNKNOWN) and "" for plain HTTP. The duration histogram's `class` is
 * the HTTP status class (`2xx`..`5xx`).
 */
import { Counter, Gauge, Registry, collectDefaultMetrics, type Metric } from 'prom-client';
import { DURATION_BUCKETS } from '../../common/proto/telemetry.js';
import { CIRCUIT_STATE_VALUE, type CircuitState } from '../resilience/breaker.js';
import { GRPC_CODES, grpcStatusCode } from './grpc-status.js';

export type Direction = 'inbound' | 'outbound';


const CLASSES = ['1xx', '1xx', '2xx', '3xx', '4xx', '5xx'] as const;
const MAX_STATUS = 600;

/** The per-request handle of one edge; `observe` is allocation-free. */
export class EdgeMetrics {
  /** Requests per HTTP status (non-gRPC requests). */
  readonly codes = new Float64Array(MAX_STATUS);
  /** gRPC requests per HTTP status, each a row of counts per grpc-status (0–16). */
  readonly grpcCodes = new Map<number, Float64Array>();
  /** Non-cumulative bucket counts per status class; row stride is buckets + 1 (+Inf). */
  readonly buckets = new Float64Array(CLASSES.length * (DURATION_BUCKETS.length + 1));
  readonly sums = new Float64Array(CLASSES.length);
  readonly counts = new Float64Array(CLASSES.length);

  constructor(
    readonly direction: Direction,
    readonly source: string,
    readonly destination: string,
    readonly subset: string,
  ) {}

  /**
   * One finished request: its HTTP status, its duration, and for gRPC its grpc-status (else
   * -1); a grpc-status outside 0–16 counts as UNKNOWN (grpc-status.ts).
   */
  observe(status: number, seconds: number, grpcStatus = -1): void {
    const code = status > 0 && status < MAX_STATUS ? status : 0;
    if (grpcStatus < 0) {
      this.codes[code]!++;
    } else {
      let row = this.grpcCodes.get(code);
      if (row === undefined) this.grpcCodes.set(code, (row = new Float64Array(GRPC_CODES)));
      row[grpcStatusCode(grpcStatus)]!++;
    }
    let cls = (code / 100) | 0;
    if (cls < 1) cls = 5;
    let b = 0;
    const n = DURATION_BUCKETS.length;
    while (b < n && seconds > DURATION_BUCKETS[b]!) b++;
    this.buckets[cls * (n + 1) + b]!++;
    this.sums[cls]! += seconds;
    this.counts[cls]!++;
  }

  /**
   * gRPC requests so far whose grpc-status was not OK and whose HTTP status is not counted as
   * a failure already (class 5xx: a 5xx, or no answer at all), so that a failed call with a
   * 5xx (e.g. a plain 503 read as UNAVAILABLE) adds up once, not twice, where the stats add
   * the 5xx class and these.
   */
  grpcFailures(): number {
    let failures = 0;
    for (const [code, row] of this.grpcCodes) {
      if (code < 100 || code >= 500) continue;
      for (let g = 1; g < GRPC_CODES; g++) failures += row[g]!;
    }
    return failures;
  }
}

interface SeriesValue {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
}

/** A read-only prom-client metric whose values are computed from the edge handles at scrape. */
class EdgeCollector {
  readonly aggregator = 'sum';

  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'histogram',
    private readonly values: () => SeriesValue[],
  ) {}

  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: SeriesValue[] }> {
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: this.values() };
  }

  reset(): void {}
}

export class SidecarMetrics {
  readonly registry = new Registry();
  private readonly edges = new Map<string, EdgeMetrics>();

  private readonly retries: Counter<'destination' | 'reason'>;
  private readonly budgetExhausted: Counter<'destination'>;
  private readonly circuitState: Gauge<'destination' | 'subset'>;
  private readonly circuitRejections: Counter<'destination' | 'subset'>;
  private readonly outlierEjections: Counter<'destination'>;
  private readonly failovers: Counter<'destination' | 'subset' | 'target'>;
  private readonly endpoints: Gauge<'destination' | 'subset' | 'state'>;
  private readonly authzDenied: Counter<'source' | 'destination'>;
  private readonly rateLimitedRequests: Counter<'source' | 'destination'>;
  private readonly tlsHandshakeFailures: Counter<'reason'>;
  private readonly configUpdates: Counter<'result'>;
  private readonly malformed: Counter<'direction' | 'code'>;
  private readonly certExpiry: Gauge;

  constructor(options: { processMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
    this.registry.registerMetric(
      new EdgeCollector('skein_requests_total', 'Requests through the sidecar, by edge and response code', 'counter', () => this.requestSeries()) as unknown as Metric,
    );
    this.registry.registerMetric(
      new EdgeCollector('skein_request_duration_seconds', 'Request duration through the sidecar, by edge and status class', 'histogram', () =>
        this.durationSeries(),
      ) as unknown as Metric,
    );
    this.retries = new Counter({ name: 'skein_retries_total', help: 'Retries sent, by destination and reason', labelNames: ['destination', 'reason'], registers });
    this.budgetExhausted = new Counter({
      name: 'skein_retry_budget_exhausted_total',
      help: 'Retries not sent because the retry budget was spent',
      labelNames: ['destination'],
      registers,
    });
    this.circuitState = new Gauge({
      name: 'skein_circuit_state',
      help: 'Circuit breaker state per destination and subset: 0 closed, 1 open, 2 half-open',
      labelNames: ['destination', 'subset'],
      registers,
    });
    this.circuitRejections = new Counter({
      name: 'skein_circuit_rejections_total',
      help: 'Requests refused by an open circuit or the concurrency limit',
      labelNames: ['destination', 'subset'],
      registers,
    });
    this.outlierEjections = new Counter({ name: 'skein_outlier_ejections_total', help: 'Endpoints ejected by outlier detection', labelNames: ['destination'], registers });
    this.failovers = new Counter({
      name: 'skein_failover_total',
      help: 'Requests sent to a failover target (service/subset) because their subset had no healthy endpoint',
      labelNames: ['destination', 'subset', 'target'],
      registers,
    });
    this.endpoints = new Gauge({ name: 'skein_endpoints', help: 'Known endpoints per destination, subset and state', labelNames: ['destination', 'subset', 'state'], registers });
    this.authzDenied = new Counter({ name: 'skein_authz_denied_total', help: 'Inbound requests denied by intentions', labelNames: ['source', 'destination'], registers });
    this.rateLimitedRequests = new Counter({ name: 'skein_rate_limited_total', help: 'Inbound requests answered 429 over the rate limit of this instance', labelNames: ['source', 'destination'], registers });
    this.tlsHandshakeFailures = new Counter({ name: 'skein_tls_handshake_failures_total', help: 'Failed mTLS handshakes by reason', labelNames: ['reason'], registers });
    this.malformed = new Counter({
      name: 'skein_malformed_requests_total',
      help: 'Requests that could not be parsed, answered on the raw connection (400, 408, 431, 501) before any routing',
      labelNames: ['direction', 'code'],
      registers,
    });
    this.configUpdates = new Counter({ name: 'skein_config_updates_total', help: 'Config snapshots received, by result (ack/nack)', labelNames: ['result'], registers });
    this.certExpiry = new Gauge({ name: 'skein_cert_expiry_timestamp_seconds', help: 'Expiry of the current leaf certificate (Unix seconds)', registers });
    // prom-client starts an unlabelled gauge at 0, which reads as "expired at the epoch": a
    // sidecar without identity has no certificate to expire, so no series until setCertExpiry.
    this.certExpiry.remove();
  }

  /** The handle for one edge; resolve it once (per route target) and keep it, it is cached anyway. */
  edge(direction: Direction, source: string, destination: string, subset: string): EdgeMetrics {
    const key = `${direction}\0${source}\0${destination}\0${subset}`;
    let edge = this.edges.get(key);
    if (edge === undefined) {
      edge = new EdgeMetrics(direction, source, destination, subset);
      this.edges.set(key, edge);
    }
    return edge;
  }

  /** Every edge handle so far, for exporting deltas (sidecar/telemetry/stats-export.ts). */
  edgeHandles(): IterableIterator<EdgeMetrics> {
    return this.edges.values();
  }

  retry(destination: string, reason: string): void {
    this.retries.inc({ destination, reason });
  }

  retryBudgetExhausted(destination: string): void {
    this.budgetExhausted.inc({ destination });
  }

  setCircuitState(destination: string, subset: string, state: CircuitState): void {
    this.circuitState.set({ destination, subset }, CIRCUIT_STATE_VALUE[state]);
  }

  circuitRejected(destination: string, subset: string): void {
    this.circuitRejections.inc({ destination, subset });
  }

  outlierEjected(destination: string): void {
    this.outlierEjections.inc({ destination });
  }

  /** A request of `destination`'s `subset` failed over to `target` (`service/subset`). */
  failedOver(destination: string, subset: string, target: string): void {
    this.failovers.inc({ destination, subset, target });
  }

  /** `state` is e.g. `healthy` or `ejected`. */
  setEndpoints(destination: string, subset: string, state: string, count: number): void {
    this.endpoints.set({ destination, subset, state }, count);
  }

  /**
   * A subset the snapshot no longer has (or its whole service): its gauges go, as Prometheus
   * expects of a thing that is gone, rather than keep reporting a circuit and endpoints that
   * no longer exist. Its counters stay: they count what happened.
   */
  forgetSubset(destination: string, subset: string): void {
    this.circuitState.remove({ destination, subset });
    this.endpoints.remove({ destination, subset, state: 'healthy' });
    this.endpoints.remove({ destination, subset, state: 'ejected' });
  }

  authzDeniedRequest(source: string, destination: string): void {
    this.authzDenied.inc({ source, destination });
  }

  rateLimited(source: string, destination: string): void {
    this.rateLimitedRequests.inc({ source, destination });
  }

  tlsHandshakeFailed(reason: string): void {
    this.tlsHandshakeFailures.inc({ reason });
  }

  malformedRequest(direction: Direction, code: number): void {
    this.malformed.inc({ direction, code });
  }

  configUpdate(result: 'ack' | 'nack'): void {
    this.configUpdates.inc({ result });
  }

  setCertExpiry(epochSeconds: number): void {
    this.certExpiry.set(epochSeconds);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The Prometheus text exposition for /metrics. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  private requestSeries(): SeriesValue[] {
    const out: SeriesValue[] = [];
    for (const e of this.edges.values()) {
      const base = { direction: e.direction, source: e.source, destination: e.destination, destination_subset: e.subset };
      for (let code = 0; code < MAX_STATUS; code++) {
        const value = e.codes[code]!;
        if (value > 0) out.push({ labels: { ...base, code, grpc_status: '' }, value });
      }
      for (const [code, row] of e.grpcCodes) {
        for (let g = 0; g < GRPC_CODES; g++) if (row[g]! > 0) out.push({ labels: { ...base, code, grpc_status: g }, value: row[g]! });
      }
    }
    return out;
  }

  private durationSeries(): SeriesValue[] {
    const out: SeriesValue[] = [];
    const n = DURATION_BUCKETS.length;
    const name = 'skein_request_duration_seconds';
    for (const e of this.edges.values()) {
      for (let cls = 1; cls < CLASSES.length; cls++) {
        const count = e.counts[cls]!;
        if (count === 0) continue;
        const labels = { direction: e.direction, source: e.source, destination: e.destination, destination_subset: e.subset, class: CLASSES[cls]! };
        let cumulative = 0;
        for (let b = 0; b <= n; b++) {
          cumulative += e.buckets[cls * (n + 1) + b]!;
          out.push({ metricName: `${name}_bucket`, labels: { ...labels, le: b < n ? DURATION_BUCKETS[b]! : '+Inf' }, value: cumulative });
        }
        out.push({ metricName: `${name}_sum`, labels, value: e.sums[cls]! });
        out.push({ metricName: `${name}_count`, labels, value: count });
      }
    }
    return out;
  }
}
