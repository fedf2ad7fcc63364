/**
 * Golden-metric deltas for the control plane: every interval, what each edge handle of
 * SidecarMetrics counted since the last look (requests by status class, latency buckets),
 * plus the circuit breakers that are not closed and the endpoints outlier detection holds
 * ejected, and which snapshot the interval began under. It reads the counters and state the request path already keeps, so exporting adds
 * no per-request work.
 */
import type { Gauge } from 'prom-client';
import type { BreakerState, EdgeDelta, EjectionState, StatsMessage } from '../../common/proto/telemetry.js';
import { DURATION_BUCKETS } from '../../common/proto/telemetry.js';
import type { EdgeMetrics, SidecarMetrics } from './metrics.js';

const STATE_NAMES: readonly BreakerState['state'][] = ['closed', 'open', 'half-open'];
/** Status classes in the handle's arrays are indexed 1..5 (1xx..5xx). */
const FIRST_CLASS = 1;
const LAST_CLASS = 5;

interface Seen {
  counts: Float64Array;
  buckets: Float64Array;
  sums: Float64Array;
  grpcFailures: number;
}

export class StatsDeltas {
  private readonly seen = new WeakMap<EdgeMetrics, Seen>();
  /** The breakers and ejections of the previous message, to send once more when they change. */
  private stateBefore = '';
  /** The snapshot version run when the interval being counted began: the previous call's `running`. */
  private from = '';

  constructor(private readonly metrics: SidecarMetrics) {}

  /**
   * The deltas since the previous call, with the ejections in force (`ejections`) and the
   * snapshot version the interval began under; undefined when nothing happened at all. Tripped
   * breakers and ejections are sent every time, so the control plane can tell them from those of
   * a sidecar that went silent. `running` is the snapshot version requests are routed by now
   * ('' for none): the next interval begins under it.
   */
  async collect(ejections: readonly EjectionState[] = [], running = ''): Promise<StatsMessage | undefined> {
    // Read with the counters, in the same turn: the interval ends here for both.
    const fromSnapshot = this.from;
    this.from = running;
    const edges: EdgeDelta[] = [];
    for (const edge of this.metrics.edgeHandles()) {
      const delta = this.delta(edge);
      if (delta !== undefined) edges.push(delta);
    }
    const breakers = await this.breakers();
    const key = JSON.stringify([breakers, ejections]);
    const changed = key !== this.stateBefore;
    this.stateBefore = key;
    if (edges.length === 0 && !changed && ejections.length === 0 && breakers.every((b) => b.state === 'closed')) return undefined;
    return { bounds: DURATION_BUCKETS, edges, breakers, ejections, fromSnapshot };
  }

  private delta(edge: EdgeMetrics): EdgeDelta | undefined {
    let seen = this.seen.get(edge);
    if (seen === undefined) {
      seen = { counts: new Float64Array(edge.counts.length), buckets: new Float64Array(edge.buckets.length), sums: new Float64Array(edge.sums.length), grpcFailures: 0 };
      this.seen.set(edge, seen);
    }
    let total = 0;
    for (let c = FIRST_CLASS; c <= LAST_CLASS; c++) total += edge.counts[c]! - seen.counts[c]!;
    if (total === 0) return undefined;
    const stride = DURATION_BUCKETS.length + 1;
    const classes: number[] = [];
    const buckets = new Array<number>(stride).fill(0);
    let sumSeconds = 0;
    for (let c = FIRST_CLASS; c <= LAST_CLASS; c++) {
      classes.push(edge.counts[c]! - seen.counts[c]!);
      sumSeconds += edge.sums[c]! - seen.sums[c]!;
      for (let b = 0; b < stride; b++) buckets[b]! += edge.buckets[c * stride + b]! - seen.buckets[c * stride + b]!;
    }
    const grpcFailures = edge.grpcFailures();
    const grpcDelta = grpcFailures - seen.grpcFailures;
    seen.counts.set(edge.counts);
    seen.buckets.set(edge.buckets);
    seen.sums.set(edge.sums);
    seen.grpcFailures = grpcFailures;
    return { direction: edge.direction, source: edge.source, destination: edge.destination, subset: edge.subset, classes, grpcFailures: grpcDelta, buckets, sumSeconds };
  }

  private async breakers(): Promise<BreakerState[]> {
    const gauge = this.metrics.registry.getSingleMetric('skein_circuit_state') as Gauge | undefined;
    if (gauge === undefined) return [];
    const { values } = await gauge.get();
    return values.map((v) => ({ destination: String(v.labels.destination), subset: String(v.labels.subset), state: STATE_NAMES[v.value] ?? 'closed' }));
  }
}
