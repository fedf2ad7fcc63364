/**
 * The sidecar's telemetry export, in one place: golden-metric deltas every `statsIntervalMs`
 * (`Telemetry{kind:"stats"}`), tap rows while the control plane holds a tap open
 * (`kind:"tap"`), and one span per hop to the control plane's trace store (`kind:"spans"`)
 * and to `SKEIN_OTLP_ENDPOINT` when set. Everything travels on the push stream the sidecar
 * already has; without a control plane (static mode) only OTLP export can be on. The access
 * log (`--access-log`, access-log.ts) is written from here too.
 *
 * The request path sees only `recorder` (null when nothing is exported or logged): one call
 * per finished request, which queues a span, reads the tap's `open` flag and writes a line.
 */
import { Counter } from 'prom-client';
import type { Logger } from '../../common/log.js';
import type { EjectionState, TapStartCommand } from '../../common/proto/telemetry.js';
import type { AccessLog, LoggedHop } from './access-log.js';
import type { SidecarMetrics } from './metrics.js';
import { OtlpExporter } from './otlp.js';
import { SpanBuffer, type SpanSink } from './span-buffer.js';
import { StatsDeltas } from './stats-export.js';
import { TapBuffer } from './tap-buffer.js';

/** Called by the exchange when a request finishes (after its metrics are counted), with its trace ids set, forwarded or not. */
export interface HopRecorder {
  /** Spans are exported: a retry of a sampled request gets a span of its own (RetryEvent.spanId). */
  readonly exportsSpans: boolean;
  finished(hop: LoggedHop, status: number, seconds: number): void;
}

/** The sidecar's mesh, as far as its stats messages read it (sidecar/cluster/mesh.ts). */
export interface ReportedMesh {
  /** The endpoints outlier detection holds ejected now. */
  ejections(): readonly EjectionState[];
  /** The snapshot requests are routed by now; undefined before the first. */
  readonly snapshot: { readonly version: string } | undefined;
}

/** The push stream, as far as telemetry needs it. */
export interface TelemetrySink {
  /** false when the stream is down (the message is dropped: telemetry is best effort). */
  sendTelemetry(kind: string, json: string): boolean;
}

export interface TelemetryReporterOptions {
  readonly service: string;
  readonly instance: string;
  /** Skein's version, for the OTLP scope. */
  readonly version: string;
  readonly metrics: SidecarMetrics;
  readonly logger: Logger;
  /** The push stream; undefined in static mode. */
  readonly sink?: TelemetrySink;
  /** `SKEIN_OTLP_ENDPOINT`. */
  readonly otlpEndpoint?: string;
  readonly statsIntervalMs?: number;
  readonly tapMaxPerSecond?: number;
  readonly tapFlushMs?: number;
  readonly spanFlushMs?: number;
  /** `--access-log`, opened; closed with the reporter. */
  readonly accessLog?: AccessLog;
}

class Recorder implements HopRecorder {
  readonly exportsSpans: boolean;

  constructor(
    private readonly spans: SpanBuffer | null,
    private readonly tap: TapBuffer | null,
    private readonly accessLog: AccessLog | null,
  ) {
    this.exportsSpans = spans !== null;
  }

  finished(hop: LoggedHop, status: number, seconds: number): void {
    if (this.spans !== null && hop.sampled) this.spans.add(hop, status, seconds);
    if (this.tap !== null && this.tap.open) this.tap.add(hop, status, seconds);
    if (this.accessLog !== null) this.accessLog.write(hop, status, seconds);
  }
}

export class TelemetryReporter {
  /** What the exchanges call; null when there is no control plane, OTLP endpoint or access log. */
  readonly recorder: HopRecorder | null;
  /** `--access-log`; null when off. */
  readonly accessLog: AccessLog | null;
  private readonly tap: TapBuffer | null;
  private readonly spans: SpanBuffer | null;
  private readonly stats: StatsDeltas | null;
  private statsTimer: NodeJS.Timeout | undefined;
  private collecting = false;
  private mesh: ReportedMesh | undefined;

  constructor(private readonly options: TelemetryReporterOptions) {
    const { sink, metrics } = options;
    const droppedSpans = new Counter({
      name: 'skein_spans_dropped_total',
      help: 'Spans not exported because a queue was full or the OTLP endpoint failed',
      registers: [metrics.registry],
    });
    const sinks: SpanSink[] = [];
    if (sink !== undefined) {
      sinks.push((spans, dropped) => {
        // Not sent (the stream is down or backed up): counted, as the queue's own drops are.
        if (!sink.sendTelemetry('spans', JSON.stringify({ spans, dropped }))) droppedSpans.inc(spans.length);
      });
    }
    if (options.otlpEndpoint) {
      const otlp = new OtlpExporter(options.otlpEndpoint, options, options.logger, (n) => droppedSpans.inc(n));
      sinks.push((spans) => otlp.export(spans));
      options.logger.info({ endpoint: otlp.url }, 'exporting spans as OTLP/HTTP JSON');
    }
    this.spans = sinks.length > 0 ? new SpanBuffer({ service: options.service, instance: options.instance, sinks, flushMs: options.spanFlushMs, onDrop: (n) => droppedSpans.inc(n) }) : null;
    this.tap =
      sink === undefined
        ? null
        : new TapBuffer({ maxPerSecond: options.tapMaxPerSecond ?? 100, flushMs: options.tapFlushMs ?? 100, send: (message) => void sink.sendTelemetry('tap', JSON.stringify(message)) });
    this.stats = sink === undefined ? null : new StatsDeltas(metrics);
    this.accessLog = options.accessLog ?? null;
    this.recorder = this.spans !== null || this.tap !== null || this.accessLog !== null ? new Recorder(this.spans, this.tap, this.accessLog) : null;
  }

  /** Handles the control plane's tap commands; false for commands that are not telemetry's. */
  command(kind: string, json: string): boolean {
    if (this.tap === null) return false;
    if (kind === 'tap-start') {
      let ttlMs = 10_000;
      try {
        ttlMs = Math.min(60_000, Math.max(1_000, Number((JSON.parse(json) as Partial<TapStartCommand>).ttlMs) || ttlMs));
      } catch {
        // a malformed body still opens the tap with the default lease
      }
      if (!this.tap.open) this.options.logger.info({ ttlMs }, 'tap opened by the control plane');
      this.tap.start(ttlMs);
      return true;
    }
    if (kind === 'tap-stop') {
      if (this.tap.open) this.options.logger.info('tap closed by the control plane');
      this.tap.stop();
      return true;
    }
    return false;
  }

  /** Starts the stats timer; the mesh they read exists only from here on. */
  start(mesh: ReportedMesh): void {
    this.mesh = mesh;
    if (this.stats === null || this.statsTimer !== undefined) return;
    this.statsTimer = setInterval(() => void this.sendStats(), this.options.statsIntervalMs ?? 1_000);
    this.statsTimer.unref();
  }

  /** Sends what is pending (last stats, spans, tap rows) and stops the timers. */
  async close(): Promise<void> {
    if (this.statsTimer !== undefined) clearInterval(this.statsTimer);
    this.statsTimer = undefined;
    await this.sendStats();
    this.tap?.stop();
    this.spans?.close();
    await this.accessLog?.close();
  }

  private async sendStats(): Promise<void> {
    if (this.stats === null || this.collecting) return;
    this.collecting = true;
    try {
      const message = await this.stats.collect(this.mesh?.ejections(), this.mesh?.snapshot?.version);
      if (message !== undefined) this.options.sink!.sendTelemetry('stats', JSON.stringify(message));
    } finally {
      this.collecting = false;
    }
  }
}
