/**
 * Spans, one per hop: a small record is queued when a sampled request finishes and the
 * queue goes out in batches (every `flushMs`, or sooner once `batchSize` are waiting) to
 * each sink: the control plane's trace store and, when configured, an OTLP endpoint. The
 * queue is bounded: when it is full, spans are dropped and counted, never the request
 * slowed.
 */
import { performance } from 'node:perf_hooks';
import { UNNAMED_PEER, type SpanEvent, type SpanRecord } from '../../common/proto/telemetry.js';
import { callerAttemptOf, pathOnly, type Hop, type RetryEvent } from './hop.js';

export type SpanSink = (spans: readonly SpanRecord[], dropped: number) => void;

export interface SpanBufferOptions {
  readonly service: string;
  readonly instance: string;
  readonly sinks: readonly SpanSink[];
  readonly maxQueued?: number;
  readonly batchSize?: number;
  readonly flushMs?: number;
  /** Counts dropped spans (a Prometheus counter in the sidecar). */
  readonly onDrop?: (n: number) => void;
}

const NO_EVENTS: readonly SpanEvent[] = [];

export class SpanBuffer {
  private queue: SpanRecord[] = [];
  private dropped = 0;
  private readonly maxQueued: number;
  private readonly batchSize: number;
  private readonly timer: NodeJS.Timeout;
  private soon: NodeJS.Immediate | undefined;

  constructor(private readonly options: SpanBufferOptions) {
    this.maxQueued = options.maxQueued ?? 4096;
    this.batchSize = options.batchSize ?? 128;
    this.timer = setInterval(() => this.flush(), options.flushMs ?? 1000);
    this.timer.unref();
  }

  add(hop: Hop, status: number, seconds: number): void {
    if (!this.room()) return;
    const outbound = hop.deps.direction === 'outbound';
    const edge = hop.edge;
    const retries = hop.retries;
    const span: SpanRecord = {
      traceId: hop.traceId,
      spanId: hop.spanId,
      parentSpanId: hop.parentSpanId,
      name: `${hop.method} ${hop.destination}`,
      kind: outbound ? 'client' : 'server',
      service: this.options.service,
      instance: this.options.instance,
      source: edge?.source ?? (outbound ? this.options.service : UNNAMED_PEER),
      destination: hop.destination,
      subset: edge?.subset ?? '',
      method: hop.method,
      path: pathOnly(hop.url),
      status,
      grpcStatus: hop.grpcStatus ?? -1,
      startMs: performance.timeOrigin + hop.startedAt,
      durationMs: Math.round(seconds * 1e6) / 1e3,
      attempts: hop.attempts,
      callerAttempt: outbound ? 0 : callerAttemptOf(hop.callerAttempt),
      resendCount: 0,
      events: retries === null ? NO_EVENTS : retries.map((r) => ({ timeMs: performance.timeOrigin + r.at, name: 'retry', attributes: { reason: r.reason, attempt: r.attempt } })),
      // Always set, so every record has one shape; JSON leaves out an undefined one.
      reason: hop.reason,
    };
    this.queue.push(span);
    if (retries !== null) this.addRetries(span, hop, retries, seconds);
    if (this.queue.length >= this.batchSize && this.soon === undefined) this.soon = setImmediate(() => this.flush());
  }

  /** Whether the queue takes one more span; when full, the span is dropped and counted. */
  private room(): boolean {
    if (this.queue.length < this.maxQueued) return true;
    this.dropped++;
    this.options.onDrop?.(1);
    return false;
  }

  /**
   * A client span per retry, under the hop's span (the hop's span stands for the request and
   * its first try): from when the retry went out to when its try failed, or, for the last
   * try, to the hop's end with the hop's answer. Dropped and counted as the hop's when the queue is full.
   */
  private addRetries(hopSpan: SpanRecord, hop: Hop, retries: readonly RetryEvent[], seconds: number): void {
    const hopEnd = hop.startedAt + seconds * 1000;
    for (const r of retries) {
      if (r.spanId === '' || !this.room()) continue;
      const last = Number.isNaN(r.endedAt);
      const end = last ? hopEnd : r.endedAt;
      this.queue.push({
        ...hopSpan,
        spanId: r.spanId,
        parentSpanId: hop.spanId,
        status: last ? hopSpan.status : r.status,
        grpcStatus: last ? hopSpan.grpcStatus : r.grpcStatus,
        startMs: performance.timeOrigin + r.at,
        durationMs: Math.round((end - r.at) * 1e3) / 1e3,
        attempts: 1,
        resendCount: r.attempt,
        events: NO_EVENTS,
        reason: last ? hopSpan.reason : undefined,
      });
    }
  }

  flush(): void {
    this.soon = undefined;
    if (this.queue.length === 0 && this.dropped === 0) return;
    const spans = this.queue;
    const dropped = this.dropped;
    this.queue = [];
    this.dropped = 0;
    for (const sink of this.options.sinks) sink(spans, dropped);
  }

  close(): void {
    clearInterval(this.timer);
    if (this.soon !== undefined) clearImmediate(this.soon);
    this.flush();
  }
}
