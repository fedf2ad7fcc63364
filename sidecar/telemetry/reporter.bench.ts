/**
 * `npx vitest bench --run sidecar/telemetry/reporter.bench.ts`: what telemetry export costs
 * per request (1 op = 1000 finished requests), with the batch encoding amortised in.
 */
import { bench, describe } from 'vitest';
import type { Hop } from './hop.js';
import { SidecarMetrics } from './metrics.js';
import { otlpTraceJson } from './otlp.js';
import { SpanBuffer } from './span-buffer.js';
import { TapBuffer } from './tap-buffer.js';

const BATCH = 1000;
const metrics = new SidecarMetrics({ processMetrics: false });
const hop: Hop = {
  startedAt: 100, method: 'GET', url: '/items/42?x=1', authority: 'catalog', destination: 'catalog',
  traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', parentSpanId: 'b7ad6b7169203331', sampled: true,
  edge: metrics.edge('outbound', 'web', 'catalog', 'v1'), attempts: 1, callerAttempt: undefined, retries: null, reason: undefined, deps: { direction: 'outbound' },
};
let sink = 0;
const toControlPlane = new SpanBuffer({ service: 'web', instance: 'web-1', flushMs: 3_600_000, maxQueued: 1 << 20, batchSize: 1 << 20, sinks: [(spans) => void (sink += JSON.stringify({ spans, dropped: 0 }).length)] });
const toBoth = new SpanBuffer({
  service: 'web', instance: 'web-1', flushMs: 3_600_000, maxQueued: 1 << 20, batchSize: 1 << 20,
  sinks: [(spans) => void (sink += JSON.stringify({ spans, dropped: 0 }).length), (spans) => void (sink += otlpTraceJson('web', 'web-1', spans, '0.1.0').length)],
});
const closedTap = new TapBuffer({ maxPerSecond: 100, flushMs: 100, send: () => undefined });
const openTap = new TapBuffer({ maxPerSecond: 100, flushMs: 3_600_000, send: (m) => void (sink += JSON.stringify(m).length) });
openTap.start(3_600_000);

describe('telemetry per finished request (x1000)', () => {
  bench('tap closed: the one boolean check', () => {
    for (let i = 0; i < BATCH; i++) if (closedTap.open) closedTap.add(hop, 200, 0.004);
  });
  bench('tap open, rate limit reached (counted, not sent)', () => {
    for (let i = 0; i < BATCH; i++) if (openTap.open) openTap.add(hop, 200, 0.004);
    openTap.flush();
  });
  bench('span queued + JSON to the control plane (batch encode amortised)', () => {
    for (let i = 0; i < BATCH; i++) toControlPlane.add(hop, 200, 0.004);
    toControlPlane.flush();
  });
  bench('span queued + JSON to the control plane + OTLP JSON', () => {
    for (let i = 0; i < BATCH; i++) toBoth.add(hop, 200, 0.004);
    toBoth.flush();
  });
});
