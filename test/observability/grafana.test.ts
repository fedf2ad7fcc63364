/**
 * deploy/grafana/skein-dashboard.json is built on SPEC §7's metric names: every skein_*
 * series it queries exists, every SPEC §7 series is shown somewhere, and the sidecar's own
 * /metrics really exposes those names.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SidecarMetrics } from '../../sidecar/telemetry/metrics.js';
import { repoRoot, SPEC_METRICS } from '../support/index.js';


interface Panel {
  id: number;
  type: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { uid: string };
  targets?: { expr: string; datasource: { uid: string } }[];
}

const dashboard = JSON.parse(readFileSync(join(repoRoot, 'deploy', 'grafana', 'skein-dashboard.json'), 'utf8')) as { panels: Panel[]; templating: { list: { name: string }[] }; uid: string };
const exprs = dashboard.panels.flatMap((p) => p.targets ?? []).map((t) => t.expr);
const queried = new Set(exprs.flatMap((e) => [...e.matchAll(/\b(skein_[a-z_]+)/g)].map((m) => m[1]!.replace(/_(bucket|sum|count)$/, ''))));

describe('Grafana dashboard', () => {
  it('queries only SPEC §7 metric names and shows every one of them', () => {
    expect([...queried].filter((m) => !SPEC_METRICS.includes(m))).toEqual([]);
    expect(SPEC_METRICS.filter((m) => !queried.has(m))).toEqual([]);
    for (const e of exprs) expect(e).not.toMatch(/\bpath\b/); // labels never include raw paths
  });

  it('uses labels the sidecar exports', async () => {
    const metrics = new SidecarMetrics();
    metrics.edge('outbound', 'web', 'catalog', 'v1').observe(200, 0.01);
    const text = await metrics.text();
    for (const name of ['skein_requests_total{direction="outbound",source="web",destination="catalog",destination_subset="v1",code="200"', 'skein_request_duration_seconds_bucket{', 'process_cpu_seconds_total', 'process_resident_memory_bytes']) {
      expect(text).toContain(name);
    }
    const labels = new Set(exprs.flatMap((e) => [...e.matchAll(/by \(([^)]*)\)/g)].flatMap((m) => m[1]!.split(',').map((l) => l.trim()))));
    expect([...labels].filter((l) => !['le', 'destination', 'source', 'destination_subset', 'code', 'reason', 'subset', 'state', 'result', 'job', 'instance'].includes(l))).toEqual([]);
  });

  it('is a well-formed dashboard: unique ids, a 24-column grid, the datasource as a variable', () => {
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of dashboard.panels) expect(p.gridPos.x + p.gridPos.w).toBeLessThanOrEqual(24);
    for (const p of dashboard.panels.filter((x) => x.type !== 'row')) {
      expect(p.datasource?.uid).toBe('${datasource}');
      expect(p.targets!.length).toBeGreaterThan(0);
    }
    expect(dashboard.templating.list.map((v) => v.name)).toEqual(['datasource', 'job', 'service']);
    expect(dashboard.uid).toBe('skein-mesh');
  });
});
