/**
 * The control plane's in-memory trace store for the dashboard: spans from every sidecar,
 * grouped by trace id. Bounded: the oldest traces go first when `maxTraces` is reached, and
 * a trace keeps at most `maxSpansPerTrace` spans.
 */
import { spanFailed, UNNAMED_PEER, type SpanRecord } from '../../common/proto/telemetry.js';

export interface TraceSummary {
  traceId: string;
  /**
   * The root span's name and path; while the root has not arrived, those of the earliest span
   * whose parent has not arrived either.
   */
  root: string;
  /** In call order: a caller before the services it called. */
  services: string[];
  spans: number;
  startMs: number;
  durationMs: number;
  /** Some hop failed (common/proto/telemetry.ts spanFailed): a 5xx, no answer, a gRPC error, or its sidecar's own answer. */
  error: boolean;
}

/** A span of one trace as the API serves it: marked failed by the rule that makes the trace an error, so the dashboard need not repeat it. */
export type ViewedSpan = SpanRecord & { readonly failed: boolean };

export interface TraceView extends TraceSummary {
  spanList: ViewedSpan[];
}

export class TraceStore {
  private readonly traces = new Map<string, SpanRecord[]>();
  droppedBySidecars = 0;

  constructor(
    private readonly maxTraces = 2_000,
    private readonly maxSpansPerTrace = 256,
  ) {}

  add(spans: readonly SpanRecord[], dropped = 0): void {
    this.droppedBySidecars += dropped;
    for (const span of spans) {
      let list = this.traces.get(span.traceId);
      if (!list) {
        if (this.traces.size >= this.maxTraces) this.traces.delete(this.traces.keys().next().value!);
        this.traces.set(span.traceId, (list = []));
      }
      if (list.length < this.maxSpansPerTrace) list.push(span);
    }
  }

  get(traceId: string): TraceView | undefined {
    const list = this.traces.get(traceId.toLowerCase());
    if (!list) return undefined;
    const spans = [...list].sort((a, b) => a.startMs - b.startMs);
    return { ...summarize(traceId.toLowerCase(), spans), spanList: spans.map((s) => ({ ...s, failed: spanFailed(s) })) };
  }

  /** The newest traces first, optionally only those through `service`. */
  recent(limit = 50, service?: string): TraceSummary[] {
    const out: TraceSummary[] = [];
    const ids = [...this.traces.keys()];
    for (let i = ids.length - 1; i >= 0 && out.length < limit; i--) {
      const spans = this.traces.get(ids[i]!)!;
      if (service && !spans.some((s) => s.service === service || s.destination === service)) continue;
      out.push(summarize(ids[i]!, spans));
    }
    return out.sort((a, b) => b.startMs - a.startMs);
  }
}

function summarize(traceId: string, spans: readonly SpanRecord[]): TraceSummary {
  const ordered = callOrder(spans);
  const root = ordered[0]!;
  const start = Math.min(...spans.map((s) => s.startMs));
  const end = Math.max(...spans.map((s) => s.startMs + s.durationMs));
  return {
    traceId,
    root: `${root.name} ${root.path}`,
    services: [...new Set(ordered.flatMap((s) => [s.source, s.destination]).filter((n) => n && n !== UNNAMED_PEER))],
    spans: spans.length,
    startMs: start,
    durationMs: Math.round((end - start) * 1000) / 1000,
    error: spans.some(spanFailed),
  };
}

/**
 * The spans depth first along the call tree, siblings by start time, so a caller comes before
 * what it called whatever order the sidecars' reports arrived in. A span whose parent is not
 * in the store (the root, or a hop whose caller's span has not arrived yet) starts a tree;
 * trees go by start time, so an incomplete trace starts with its earliest hop.
 */
function callOrder(spans: readonly SpanRecord[]): SpanRecord[] {
  const byStart = [...spans].sort((a, b) => a.startMs - b.startMs);
  const ids = new Set(spans.map((s) => s.spanId));
  const children = new Map<string, SpanRecord[]>();
  const roots: SpanRecord[] = [];
  for (const s of byStart) {
    if (!ids.has(s.parentSpanId)) roots.push(s);
    else if (children.has(s.parentSpanId)) children.get(s.parentSpanId)!.push(s);
    else children.set(s.parentSpanId, [s]);
  }
  const out: SpanRecord[] = [];
  const seen = new Set<SpanRecord>();
  const visit = (s: SpanRecord): void => {
    // Span ids come from sidecars: a repeated id could make a loop that no root leads into.
    if (seen.has(s)) return;
    seen.add(s);
    out.push(s);
    for (const child of children.get(s.spanId) ?? []) visit(child);
  };
  for (const s of [...roots, ...byStart]) visit(s);
  return out;
}
