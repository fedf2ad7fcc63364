/**
 * Golden metrics from real traffic through real sidecars in control-plane mode: the counts
 * and success rate the admin API and `skein stat` show match what was sent, and the
 * percentiles fall in the histogram bucket the requests' latencies fall in.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StatsView } from '../../control-plane/observability/stats.js';
import { skeinCli } from '../identity/mesh.js';
import { apiError, Processes, waitUntil } from '../support/index.js';
import { burst, startObservedMesh, type ObservedMesh } from './mesh.js';

const procs = new Processes();
let mesh: ObservedMesh;

const stats = async (service?: string) => (await mesh.cp.api.get<StatsView>(`/api/v1/stats${service ? `?service=${service}` : ''}`)).body;

beforeAll(async () => {
  mesh = await startObservedMesh(procs);
}, 90_000);

afterAll(async () => {
  await procs.killAll();
  await mesh?.close();
});

describe('golden metrics', () => {
  it('counts every request and failure per service and per edge, with percentiles in the right bucket', async () => {
    // 40 slow successes (60 ms: the 50..100 ms bucket) and 10 fast failures (500 is not retried by default).
    const ok = await burst(mesh, 'backend', '/slow?delay=60', 40);
    const failed = await burst(mesh, 'backend', '/fail?status=500', 10, 5);
    expect(ok.map((r) => r.status).every((s) => s === 200)).toBe(true);
    expect(failed.map((r) => r.status).every((s) => s === 500)).toBe(true);

    const view = await waitUntil(
      async () => {
        const v = await stats();
        const edge = v.edges.find((e) => e.source === 'web' && e.destination === 'backend');
        const svc = v.services.find((s) => s.service === 'backend');
        // Each sidecar reports on its own: the service's row counts from its inbound side once that report is in.
        return edge?.['1m'].requests === 50 && svc?.['1m'].requests === 50 && svc.seenFrom === 'inbound' ? v : undefined;
      },
      { timeoutMs: 10_000, what: 'stats to count 50 requests web → backend' },
    );
    const edge = view.edges.find((e) => e.source === 'web' && e.destination === 'backend')!;
    expect(edge['1m']).toMatchObject({ requests: 50, failures: 10, successRate: 0.8 });
    expect(edge['1m'].rps).toBeCloseTo(50 / 60, 2);
    // Per subset: both versions served some, and together all of it.
    expect(edge.subsets.reduce((n, s) => n + s['1m'].requests, 0)).toBe(50);
    // The sidecar times less than the client does (no client-side hop), so each percentile lies
    // at most in the bucket of the client's own figure, and at least in the 50..100 ms one.
    const clientMs = [...ok, ...failed].map((r) => r.ms).sort((a, b) => a - b);
    const bucketTop = (ms: number) => view.bucketBoundsMs.find((b) => b >= ms) ?? Infinity;
    for (const [q, f] of [['p50', 0.5], ['p95', 0.95], ['p99', 0.99]] as const) {
      const clientQ = clientMs[Math.ceil(f * clientMs.length) - 1]!;
      expect(edge['1m'].latencyMs![q]).toBeGreaterThanOrEqual(50);
      expect(edge['1m'].latencyMs![q]).toBeLessThanOrEqual(bucketTop(clientQ));
    }
    const backend = view.services.find((s) => s.service === 'backend')!;
    expect(backend.seenFrom).toBe('inbound');
    expect(backend['1m']).toMatchObject({ requests: 50, failures: 10, successRate: 0.8 });
    expect(backend['1m'].latencyMs!.p50).toBeGreaterThanOrEqual(50);
    expect(backend['1m'].latencyMs!.p50).toBeLessThanOrEqual(edge['1m'].latencyMs!.p50);
    expect(backend.subsets.map((s) => s.subset).sort()).toEqual(['v1', 'v2']);
    expect(view.bucketBoundsMs).toContain(50);

    // The 10 s window has the same requests while they are recent (all sent within a few seconds).
    // On a busy machine the first ones may already have fallen out, so only bounds are certain.
    const recent = (await stats('backend')).edges.find((e) => e.source === 'web')!;
    expect(recent['10s'].requests).toBeGreaterThan(0);
    expect(recent['10s'].requests).toBeLessThanOrEqual(50);
    expect(recent['10s'].rps).toBeCloseTo(recent['10s'].requests / 10, 2);

    // The CLI shows the same figures.
    const table = await skeinCli(procs, mesh.cp, ['stat']);
    expect(table.code, table.output).toBe(0);
    expect(table.output).toMatch(/^backend\s+0\.83\s+80\.00%\s+\d+ms\s+\d+ms\s+\d+ms\s+50$/m);
    const one = await skeinCli(procs, mesh.cp, ['stat', 'backend']);
    expect(one.code, one.output).toBe(0);
    expect(one.output).toMatch(/^web\s+backend\s+all\s+0\.83\s+80\.00%.*\s50$/m);
    expect(one.output).toMatch(/^backend\s+v1\s/m);
    const short = await skeinCli(procs, mesh.cp, ['stat', '--window', '10s']);
    expect(short.code, short.output).toBe(0);
    expect(short.output).toMatch(/^window 10s/m);
    expect(short.output).toMatch(/^backend\s+\d+\.\d{2}\s+\d+\.\d{2}%/m);
    const json = await skeinCli(procs, mesh.cp, ['stat', 'backend', '-o', 'json']);
    expect((JSON.parse(json.output) as StatsView).services[0]!['1m'].requests).toBe(50);
  });

  it('keeps requests routed to no service on the caller\'s edge to `(no-route)`, which is no service', async () => {
    const unrouted = await burst(mesh, 'nosuch', '/nowhere', 3, 1);
    expect(unrouted.map((r) => r.status)).toEqual([404, 404, 404]);
    const view = await waitUntil(
      async () => {
        const v = await stats('web');
        return v.edges.find((e) => e.destination === '(no-route)')?.['1m'].requests === 3 ? v : undefined;
      },
      { timeoutMs: 10_000, what: 'the web → (no-route) edge to count 3 requests' },
    );
    expect(view.edges.find((e) => e.destination === '(no-route)')!.source).toBe('web');
    expect(view.edges.map((e) => e.destination)).not.toContain('unknown');
    expect((await stats()).services.map((s) => s.service)).not.toContain('(no-route)');
    const table = await skeinCli(procs, mesh.cp, ['stat', 'web']);
    expect(table.code, table.output).toBe(0);
    expect(table.output).toMatch(/^web\s+\(no-route\)\s+all\s/m);
    // Asked for by name, it is refused like any name no policy, route or instance names.
    expect(await apiError(stats('unknown'))).toMatchObject({ status: 404, code: 'not-found', message: 'unknown service unknown: no policy, routes or instances' });
    const one = await skeinCli(procs, mesh.cp, ['stat', 'unknown']);
    expect(one.code, one.output).toBe(1);
    expect(one.output).toMatch(/404 not-found: unknown service unknown/);
  });

  it('answers 400 naming a malformed service, 404 for an unknown one', async () => {
    expect(await apiError(stats('NOPE'))).toMatchObject({ status: 400, code: 'bad-request', message: expect.stringMatching(/^service must be a DNS label.*\(got "NOPE"\)$/) });
    expect(await apiError(stats('nosuch'))).toMatchObject({ status: 404, code: 'not-found' });
    // A known service without traffic is an empty answer, not an error.
    expect(await stats('frontend')).toMatchObject({ services: [] });
  });

  it('refuses a bad window flag with exit 2', async () => {
    const bad = await skeinCli(procs, mesh.cp, ['stat', '--window', '5m']);
    expect(bad.code).toBe(2);
  });

  // Last: it stops web's sidecar.
  it('still shows the last minute of a service whose instances have left', async () => {
    await burst(mesh, 'backend', '/before-leaving', 3, 1);
    await waitUntil(async () => (await stats('web')).edges.some((e) => e.destination === 'backend'), { what: 'web → backend in the stats' });
    mesh.web.child.kill('SIGTERM');
    // Stopped cleanly, its instance leaves the registry at once: nothing names web any more.
    await waitUntil(async () => (await apiError(mesh.cp.api.get('/api/v1/services/web'))).status === 404, { what: 'web to leave the registry' });
    expect((await stats('web')).edges.map((e) => e.destination)).toContain('backend');
  });
});
