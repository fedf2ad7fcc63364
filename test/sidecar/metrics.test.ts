/**
 * /metrics and trace propagation end to end over a real mTLS hop: app → web sidecar
 * (outbound) → catalog sidecar (inbound) → catalog app. Counts must match what was sent,
 * with the SPEC §7 names and labels on both sides.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { echoHandler, makeCa, SPEC_METRICS, makeLeaf, Processes, startUpstream, tempDir, writeIdentity, writeTempConfig, type SpawnedSidecar, type TestUpstream } from '../support/index.js';
import { metric, scrape, send, type Reply } from './resilience-fixture.js';

const procs = new Processes();
let catalogApp: TestUpstream;
let webApp: TestUpstream;
let web: SpawnedSidecar;
let catalog: SpawnedSidecar;


beforeAll(async () => {
  const ca = makeCa();
  const dir = tempDir();
  const ok = echoHandler('catalog');
  catalogApp = await startUpstream((req, res) => {
    if (req.url?.startsWith('/missing')) {
      res.writeHead(404);
      res.end('nope');
    } else ok(req, res);
  });
  webApp = await startUpstream(echoHandler('web'));
  catalog = await procs.sidecar({
    service: 'catalog',
    appPort: catalogApp.port,
    config: writeTempConfig({ version: '1' }),
    identity: writeIdentity(dir, 'catalog', makeLeaf(ca, 'catalog')),
  });
  web = await procs.sidecar({
    service: 'web',
    appPort: webApp.port,
    config: writeTempConfig({ version: '1', services: { catalog: { endpoints: [{ address: '127.0.0.1', port: catalog.inboundPort, labels: { version: 'v1' } }] } } }),
    identity: writeIdentity(dir, 'web', makeLeaf(ca, 'web')),
  });
});

afterAll(async () => {
  await procs.killAll();
  await Promise.all([catalogApp?.close(), webApp?.close()]);
});

const call = (path: string, headers: Record<string, string> = {}): Promise<Reply> => send(`${web.outboundUrl}${path}`, { headers: { host: 'catalog', ...headers } });

describe('metrics', () => {
  it('count requests per edge and code on both sides of the hop, with duration histograms', async () => {
    for (let i = 0; i < 5; i++) expect((await call(`/items/${i}`)).status).toBe(200);
    for (let i = 0; i < 2; i++) expect((await call('/missing')).status).toBe(404);

    const out = await scrape(web);
    const edge = { direction: 'outbound', source: 'web', destination: 'catalog' };
    expect(metric(out, 'skein_requests_total', { ...edge, code: '200', grpc_status: '' })).toBe(5);
    expect(metric(out, 'skein_requests_total', { ...edge, code: '404' })).toBe(2);
    expect(metric(out, 'skein_request_duration_seconds_count', { ...edge, class: '2xx' })).toBe(5);
    expect(metric(out, 'skein_request_duration_seconds_count', { ...edge, class: '4xx' })).toBe(2);
    expect(metric(out, 'skein_request_duration_seconds_bucket', { ...edge, class: '2xx', le: '+Inf' })).toBe(5);
    expect(metric(out, 'skein_request_duration_seconds_sum', { ...edge, class: '2xx' })).toBeGreaterThan(0);
    expect([...out.keys()].some((k) => k.startsWith('skein_requests_total') && k.includes('destination_subset='))).toBe(true);

    const inbound = await scrape(catalog);
    const inEdge = { direction: 'inbound', source: 'web', destination: 'catalog' };
    expect(metric(inbound, 'skein_requests_total', { ...inEdge, code: '200' })).toBe(5);
    expect(metric(inbound, 'skein_requests_total', { ...inEdge, code: '404' })).toBe(2);
    expect(metric(inbound, 'skein_request_duration_seconds_count', inEdge)).toBe(7);
    // Paths never become labels.
    expect([...inbound.keys(), ...out.keys()].some((k) => k.includes('/items') || k.includes('/missing'))).toBe(false);
  });

  it('expose every SPEC §7 metric name and the default process metrics', async () => {
    const text = await (await fetch(`${web.adminUrl}/metrics`)).text();
    for (const name of SPEC_METRICS) expect(text, name).toContain(`# TYPE ${name} `);
    expect(text).toContain('process_cpu_user_seconds_total');
    expect(text).toContain('nodejs_heap_size_used_bytes');
    const s = await scrape(web);
    expect(metric(s, 'skein_cert_expiry_timestamp_seconds')).toBeGreaterThan(Date.now() / 1000);
    expect(metric(s, 'skein_endpoints', { destination: 'catalog', state: 'healthy' })).toBe(1);
  });
});

describe('trace propagation', () => {
  it('keeps the trace id and links each hop to the previous span', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const callerSpan = '00f067aa0ba902b7';
    expect((await call('/traced', { traceparent: `00-${traceId}-${callerSpan}-01`, 'x-request-id': 'req-42' })).status).toBe(200);
    // Look the request up by path: the sidecar's app health checks land on the same app.
    const seen = catalogApp.requests.find((r) => r.url === '/traced')!.headers;
    const [, appTrace, appParent, flags] = String(seen.traceparent).split('-');
    expect(appTrace).toBe(traceId);
    expect(flags).toBe('01');
    expect(seen['x-b3-traceid']).toBe(traceId);
    expect(seen['x-b3-spanid']).toBe(appParent);
    // Two hops (web outbound, catalog inbound): the app's parent is the outbound hop's span,
    // whose own parent was the caller's span.
    expect(appParent).not.toBe(callerSpan);
    expect(seen['x-b3-parentspanid']).toMatch(/^[0-9a-f]{16}$/);
    expect(seen['x-b3-parentspanid']).not.toBe(callerSpan);
    expect(seen['x-request-id']).toBe('req-42');
  });

  it('starts a trace and a request id when the caller sent none', async () => {
    expect((await call('/untraced')).status).toBe(200);
    const seen = catalogApp.requests.find((r) => r.url === '/untraced')!.headers;
    expect(String(seen.traceparent)).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    expect(String(seen['x-request-id'])).toMatch(/^[0-9a-f-]{36}$/);
  });
});
