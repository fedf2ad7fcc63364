import { describe, expect, it } from 'vitest';
import pino from 'pino';
import type { SpansMessage, StatsMessage, TapMessage } from '../../common/proto/telemetry.js';
import { otlpTraceProblems } from '../../test/observability/otlp-structure.js';
import { testHop as hop } from '../../test/support/hop.js';
import { SidecarMetrics } from './metrics.js';
import { otlpTraceJson, unixNanos } from './otlp.js';
import { TelemetryReporter } from './reporter.js';
import { SpanBuffer } from './span-buffer.js';
import { StatsDeltas } from './stats-export.js';
import { StatsAggregator } from '../../control-plane/observability/stats.js';
import { TapBuffer } from './tap-buffer.js';

const logger = pino({ level: 'silent' });

describe('StatsDeltas', () => {
  it('reports what each edge counted since the last look, by class and bucket', async () => {
    const metrics = new SidecarMetrics({ processMetrics: false });
    const deltas = new StatsDeltas(metrics);
    const edge = metrics.edge('outbound', 'web', 'catalog', 'v1');
    edge.observe(200, 0.003);
    edge.observe(503, 0.2);
    const first = (await deltas.collect())!;
    expect(first.edges).toHaveLength(1);
    expect(first.edges[0]).toMatchObject({ source: 'web', destination: 'catalog', subset: 'v1', classes: [0, 1, 0, 0, 1] });
    expect(first.edges[0]!.buckets.reduce((a, b) => a + b, 0)).toBe(2);
    expect(first.edges[0]!.buckets[first.bounds.indexOf(0.005)]).toBe(1);
    expect(await deltas.collect()).toBeUndefined();
    edge.observe(200, 0.003);
    expect((await deltas.collect())!.edges[0]!.classes).toEqual([0, 1, 0, 0, 0]);
  });

  it('counts a failed gRPC call with a 5xx (or no answer) once in the control plane\'s failures, not twice', async () => {
    const metrics = new SidecarMetrics({ processMetrics: false });
    const deltas = new StatsDeltas(metrics);
    const edge = metrics.edge('outbound', 'web', 'catalog', 'v1');
    for (let i = 0; i < 7; i++) edge.observe(200, 0.003, 0);
    edge.observe(200, 0.003, 14); // a gRPC failure under HTTP 200
    edge.observe(503, 0.003, 14); // a plain 503, read as UNAVAILABLE
    edge.observe(0, 0.003, 2); // no answer at all
    const message = (await deltas.collect())!;
    expect(message.edges[0]).toMatchObject({ classes: [0, 8, 0, 0, 2], grpcFailures: 1 });
    let now = 5_000_500;
    const stats = new StatsAggregator(() => now);
    stats.ingest({ id: 'p', service: 'web', instanceId: 'web-1' }, message);
    now += 1_000;
    expect(stats.view().edges[0]!['10s']).toMatchObject({ requests: 10, failures: 3, successRate: 0.7 });
  });

  it('says which snapshot each interval began under, so one that straddles an install names the one before', async () => {
    const metrics = new SidecarMetrics({ processMetrics: false });
    const deltas = new StatsDeltas(metrics);
    const edge = metrics.edge('outbound', 'web', 'catalog', 'v2');
    edge.observe(200, 0.003);
    // Counted since the start, when no snapshot was installed yet.
    expect((await deltas.collect([], '7'))!.fromSnapshot).toBe('');
    edge.observe(500, 0.003);
    // Snapshot 8 was installed during this interval: its requests may have been routed by 7.
    expect((await deltas.collect([], '8'))!.fromSnapshot).toBe('7');
    expect(await deltas.collect([], '8')).toBeUndefined();
    edge.observe(200, 0.003);
    expect((await deltas.collect([], '8'))!).toMatchObject({ fromSnapshot: '8', edges: [{ classes: [0, 1, 0, 0, 0] }] });
  });

  it('sends the ejections in force every time, once more when the last one ends, and then nothing', async () => {
    const deltas = new StatsDeltas(new SidecarMetrics({ processMetrics: false }));
    const ejection = { destination: 'catalog', endpoint: '10.0.0.7:15443', since: 1_000, until: 31_000, reason: '5 consecutive errors' };
    await deltas.collect([]); // the first look always reports
    expect(await deltas.collect([])).toBeUndefined();
    expect((await deltas.collect([ejection]))!.ejections).toEqual([ejection]);
    // Repeated while it holds: the control plane forgets what a sidecar stops repeating.
    expect((await deltas.collect([ejection]))!.ejections).toEqual([ejection]);
    expect((await deltas.collect([]))!.ejections).toEqual([]);
    expect(await deltas.collect([])).toBeUndefined();
  });
});

describe('TapBuffer', () => {
  it('sends nothing while closed, rows at most maxPerSecond while open, and closes when its lease ends', () => {
    let now = 0;
    const sent: TapMessage[] = [];
    const metrics = new SidecarMetrics({ processMetrics: false });
    const tap = new TapBuffer({ maxPerSecond: 3, flushMs: 60_000, send: (m) => void sent.push(m), now: () => now });
    expect(tap.open).toBe(false);
    tap.start(5_000);
    for (let i = 0; i < 5; i++) tap.add(hop(metrics), 200, 0.001);
    tap.flush();
    expect(sent[0]!.rows).toHaveLength(3);
    expect(sent[0]!.dropped).toBe(2);
    expect(sent[0]!.rows[0]).toMatchObject({ path: '/items', source: 'web', destination: 'catalog', subset: 'v1', status: 200, latencyMs: 1 });
    now = 1_000;
    tap.add(hop(metrics), 200, 0.001);
    now = 6_000;
    tap.flush();
    expect(sent[1]!.rows).toHaveLength(1);
    expect(tap.open).toBe(false);
  });
});

describe('SpanBuffer', () => {
  it('drops and counts spans beyond its bound instead of growing', () => {
    const batches: SpansMessage[] = [];
    let dropped = 0;
    const metrics = new SidecarMetrics({ processMetrics: false });
    const buffer = new SpanBuffer({ service: 'web', instance: 'web-1', sinks: [(spans, d) => void batches.push({ spans, dropped: d })], maxQueued: 2, batchSize: 100, onDrop: (n) => (dropped += n) });
    const retried = hop(metrics, { attempts: 2, retries: [{ at: 150, reason: 'gateway-error', attempt: 1, spanId: '', endedAt: NaN, status: 0, grpcStatus: -1 }] });
    for (let i = 0; i < 4; i++) buffer.add(retried, 200, 0.0015);
    buffer.close();
    expect(dropped).toBe(2);
    expect(batches).toHaveLength(1);
    expect(batches[0]!.dropped).toBe(2);
    expect(batches[0]!.spans[0]).toMatchObject({ kind: 'client', service: 'web', path: '/items', durationMs: 1.5, attempts: 2, events: [{ name: 'retry', attributes: { reason: 'gateway-error', attempt: 1 } }] });
  });
});

describe('retry spans', () => {
  it('records each retry as a client span under the hop’s, ending where its try failed or with the hop, with http.request.resend_count', () => {
    const metrics = new SidecarMetrics({ processMetrics: false });
    const batches: SpansMessage[] = [];
    const buffer = new SpanBuffer({ service: 'web', instance: 'web-1', sinks: [(spans, d) => void batches.push({ spans, dropped: d })] });
    // Started at 100 ms; try 1 failed, retry 1 went out at 120 and failed at 150 with a 503, retry 2 went out at 160.
    const retries = [
      { at: 120, reason: 'reset', attempt: 1, spanId: 'aaaaaaaaaaaaaaa1', endedAt: 150, status: 503, grpcStatus: -1 },
      { at: 160, reason: 'gateway-error', attempt: 2, spanId: 'aaaaaaaaaaaaaaa2', endedAt: NaN, status: 0, grpcStatus: -1 },
    ];
    buffer.add(hop(metrics, { parentSpanId: '1111111111111111', attempts: 3, retries, reason: 'timeout' }), 504, 0.1);
    // Not exported (not sampled when it went out): no span of its own.
    buffer.add(hop(metrics, { attempts: 2, retries: [{ ...retries[0]!, spanId: '' }] }), 200, 0.05);
    buffer.close();
    const spans = batches[0]!.spans;
    expect(spans.map((s) => [s.spanId, s.parentSpanId, s.resendCount])).toEqual([
      ['00f067aa0ba902b7', '1111111111111111', 0],
      ['aaaaaaaaaaaaaaa1', '00f067aa0ba902b7', 1],
      ['aaaaaaaaaaaaaaa2', '00f067aa0ba902b7', 2],
      ['00f067aa0ba902b7', '', 0],
    ]);
    expect(spans[1]).toMatchObject({ kind: 'client', name: 'GET catalog', status: 503, durationMs: 30, attempts: 1, events: [] });
    expect(spans[1]!.reason).toBeUndefined();
    expect(spans[1]!.startMs).toBe(performance.timeOrigin + 120);
    // The last try ends with the hop (100 + 100 ms) and its answer.
    expect(spans[2]).toMatchObject({ status: 504, reason: 'timeout', durationMs: 40 });
    const text = otlpTraceJson('web', 'web-1', spans, '0.1.0');
    expect(otlpTraceProblems(JSON.parse(text))).toEqual([]);
    const exported = (JSON.parse(text) as { resourceSpans: { scopeSpans: { spans: { attributes: { key: string; value: { intValue?: string } }[] }[] }[] }[] }).resourceSpans[0]!.scopeSpans[0]!.spans;
    expect(exported.map((s) => s.attributes.find((a) => a.key === 'http.request.resend_count')?.value.intValue)).toEqual([undefined, '1', '2', undefined]);
  });

  it('drops and counts retry spans the full queue has no room for', () => {
    let dropped = 0;
    const batches: SpansMessage[] = [];
    const metrics = new SidecarMetrics({ processMetrics: false });
    const buffer = new SpanBuffer({ service: 'web', instance: 'web-1', sinks: [(spans) => void batches.push({ spans, dropped: 0 })], maxQueued: 2, onDrop: (n) => (dropped += n) });
    const retry = (n: number) => ({ at: 120, reason: 'reset', attempt: n, spanId: `aaaaaaaaaaaaaaa${n}`, endedAt: NaN, status: 0, grpcStatus: -1 });
    buffer.add(hop(metrics, { attempts: 3, retries: [retry(1), retry(2)] }), 200, 0.1);
    buffer.close();
    expect(batches[0]!.spans.map((s) => s.resendCount)).toEqual([0, 1]);
    expect(dropped).toBe(1);
  });
});

describe('OTLP', () => {
  it('encodes spans as a valid ExportTraceServiceRequest', () => {
    const metrics = new SidecarMetrics({ processMetrics: false });
    const batches: SpansMessage[] = [];
    const buffer = new SpanBuffer({ service: 'web', instance: 'web-1', sinks: [(spans, d) => void batches.push({ spans, dropped: d })] });
    buffer.add(hop(metrics, { parentSpanId: '1111111111111111', retries: [{ at: 120, reason: 'reset', attempt: 1, spanId: '', endedAt: NaN, status: 0, grpcStatus: -1 }] }), 503, 0.01);
    buffer.close();
    const text = otlpTraceJson('web', 'web-1', batches[0]!.spans, '0.1.0');
    expect(otlpTraceProblems(JSON.parse(text))).toEqual([]);
    expect(text).toContain('"status":{"code":2');
    const span = (JSON.parse(text) as { resourceSpans: { scopeSpans: { spans: Record<string, unknown>[] }[] }[] }).resourceSpans[0]!.scopeSpans[0]!.spans[0]!;
    expect(span).toMatchObject({ parentSpanId: '1111111111111111', kind: 3, events: [{ name: 'retry', attributes: [{ key: 'reason', value: { stringValue: 'reset' } }, { key: 'attempt', value: { intValue: '1' } }] }] });
  });

  it("records on a server span which try of the caller it served (skein.caller_attempt), on no client span", () => {
    const metrics = new SidecarMetrics({ processMetrics: false });
    const batches: SpansMessage[] = [];
    const buffer = new SpanBuffer({ service: 'catalog', instance: 'catalog-1', sinks: [(spans, d) => void batches.push({ spans, dropped: d })] });
    const inbound = { deps: { direction: 'inbound' as const }, edge: metrics.edge('inbound', 'web', 'catalog', 'v1') };
    buffer.add(hop(metrics, { ...inbound, callerAttempt: '3' }), 200, 0.001);
    buffer.add(hop(metrics, { ...inbound, callerAttempt: undefined }), 200, 0.001);
    buffer.add(hop(metrics, { ...inbound, callerAttempt: '0' }), 200, 0.001);
    buffer.add(hop(metrics, { ...inbound, callerAttempt: '1e2' }), 200, 0.001);
    // An app's own header means nothing to the next service: the outbound hop drops it.
    buffer.add(hop(metrics, { callerAttempt: '2', attempts: 2 }), 200, 0.001);
    buffer.close();
    const spans = batches[0]!.spans;
    expect(spans.map((s) => [s.kind, s.attempts, s.callerAttempt])).toEqual([['server', 1, 3], ['server', 1, 0], ['server', 1, 0], ['server', 1, 0], ['client', 2, 0]]);
    const text = otlpTraceJson('catalog', 'catalog-1', spans, '0.1.0');
    expect(otlpTraceProblems(JSON.parse(text))).toEqual([]);
    const attributes = (JSON.parse(text) as { resourceSpans: { scopeSpans: { spans: { attributes: { key: string; value: unknown }[] }[] }[] }[] }).resourceSpans[0]!.scopeSpans[0]!.spans.map(
      (s) => s.attributes.find((a) => a.key === 'skein.caller_attempt')?.value,
    );
    expect(attributes).toEqual([{ intValue: '3' }, undefined, undefined, undefined, undefined]);
  });

  it("marks a hop the sidecar answered itself as an error with its reason (skein.reason), whatever the status", () => {
    const metrics = new SidecarMetrics({ processMetrics: false });
    const batches: SpansMessage[] = [];
    const buffer = new SpanBuffer({ service: 'web', instance: 'web-1', sinks: [(spans, d) => void batches.push({ spans, dropped: d })] });
    buffer.add(hop(metrics, { reason: 'no-route' }), 404, 0.001);
    buffer.add(hop(metrics, { reason: 'no-healthy-endpoints', grpcStatus: 14 }), 200, 0.001);
    buffer.add(hop(metrics), 404, 0.001);
    buffer.close();
    const spans = batches[0]!.spans;
    expect(spans.map((s) => s.reason)).toEqual(['no-route', 'no-healthy-endpoints', undefined]);
    // The trace store gets the reason only where there is one.
    expect(JSON.parse(JSON.stringify(spans[2]))).not.toHaveProperty('reason');
    const text = otlpTraceJson('web', 'web-1', spans, '0.1.0');
    expect(otlpTraceProblems(JSON.parse(text))).toEqual([]);
    const exported = (JSON.parse(text) as { resourceSpans: { scopeSpans: { spans: { attributes: { key: string; value: unknown }[]; status: unknown }[] }[] }[] }).resourceSpans[0]!.scopeSpans[0]!.spans;
    expect(exported.map((s) => [s.status, s.attributes.find((a) => a.key === 'skein.reason')?.value])).toEqual([
      [{ code: 2, message: 'HTTP 404 no-route' }, { stringValue: 'no-route' }],
      [{ code: 2, message: 'grpc-status 14 no-healthy-endpoints' }, { stringValue: 'no-healthy-endpoints' }],
      [{ code: 0 }, undefined],
    ]);
  });

  it('writes nanoseconds exactly', () => {
    expect(unixNanos(1_700_000_000_123.456)).toBe('1700000000123456000');
    expect(unixNanos(1_700_000_000_123.0004)).toBe('1700000000123000000');
    expect(unixNanos(1_700_000_000_123.9999)).toBe('1700000000124000000');
  });
});

describe('TelemetryReporter', () => {
  it('has no recorder without a control plane or OTLP endpoint (nothing per request)', () => {
    const reporter = new TelemetryReporter({ service: 'web', instance: 'web-1', version: '0', metrics: new SidecarMetrics({ processMetrics: false }), logger });
    expect(reporter.recorder).toBeNull();
    expect(reporter.command('tap-start', '{}')).toBe(false);
  });

  it('sends stats, and tap rows only between tap-start and tap-stop', async () => {
    const sent: { kind: string; json: string }[] = [];
    const metrics = new SidecarMetrics({ processMetrics: false });
    const reporter = new TelemetryReporter({ service: 'web', instance: 'web-1', version: '0', metrics, logger, sink: { sendTelemetry: (kind, json) => (sent.push({ kind, json }), true) }, tapFlushMs: 60_000 });
    const recorder = reporter.recorder!;
    recorder.finished(hop(metrics), 200, 0.001);
    expect(reporter.command('tap-start', '{"ttlMs": 5000}')).toBe(true);
    recorder.finished(hop(metrics, { url: '/tapped' }), 200, 0.001);
    expect(reporter.command('tap-stop', '{}')).toBe(true);
    recorder.finished(hop(metrics), 200, 0.001);
    metrics.edge('outbound', 'web', 'catalog', 'v1').observe(200, 0.001);
    await reporter.close();
    const taps = sent.filter((m) => m.kind === 'tap').flatMap((m) => (JSON.parse(m.json) as TapMessage).rows.map((r) => r.path));
    expect(taps).toEqual(['/tapped']);
    expect((JSON.parse(sent.find((m) => m.kind === 'stats')!.json) as StatsMessage).edges[0]!.classes[1]).toBe(1);
    expect((JSON.parse(sent.find((m) => m.kind === 'spans')!.json) as SpansMessage).spans).toHaveLength(3);
  });
});
