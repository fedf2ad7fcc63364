/** `npx vitest bench --run sidecar/telemetry/metrics.bench.ts`: per-request metric cost (1 op = 1000 requests). */
import { Counter, Histogram, Registry } from 'prom-client';
import { bench, describe } from 'vitest';
import { DURATION_BUCKETS } from '../../common/proto/telemetry.js';
import { SidecarMetrics } from './metrics.js';

const BATCH = 1000;
const metrics = new SidecarMetrics({ processMetrics: false });
const edge = metrics.edge('outbound', 'web', 'catalog', 'v1');

const registry = new Registry();
const counter = new Counter({ name: 'c', help: 'c', labelNames: ['direction', 'source', 'destination', 'destination_subset', 'code'], registers: [registry] });
const histogram = new Histogram({
  name: 'h',
  help: 'h',
  labelNames: ['direction', 'source', 'destination', 'destination_subset', 'class'],
  buckets: [...DURATION_BUCKETS],
  registers: [registry],
});
const counterChild = counter.labels('outbound', 'web', 'catalog', 'v1', '200');
const histogramChild = histogram.labels('outbound', 'web', 'catalog', 'v1', '2xx');

describe('one request recorded (x1000)', () => {
  bench('SidecarMetrics edge handle: edge.observe(status, seconds)', () => {
    for (let i = 0; i < BATCH; i++) edge.observe(i % 50 === 0 ? 503 : 200, 0.0042);
  });
  bench('SidecarMetrics edge lookup per request + observe', () => {
    for (let i = 0; i < BATCH; i++) metrics.edge('outbound', 'web', 'catalog', 'v1').observe(200, 0.0042);
  });
  bench('prom-client labels({...}).inc() + observe() per request', () => {
    for (let i = 0; i < BATCH; i++) {
      counter.inc({ direction: 'outbound', source: 'web', destination: 'catalog', destination_subset: 'v1', code: '200' });
      histogram.observe({ direction: 'outbound', source: 'web', destination: 'catalog', destination_subset: 'v1', class: '2xx' }, 0.0042);
    }
  });
  bench('prom-client pre-resolved children inc() + observe()', () => {
    for (let i = 0; i < BATCH; i++) {
      counterChild.inc();
      histogramChild.observe(0.0042);
    }
  });
});
