/**
 * Tap, traces and OTLP export through real sidecars: tap rows arrive within a second and
 * follow their filters (API and `skein tap`); a request through two services leaves one
 * span per hop with the right parent links, retries as events and spans of their own, in the control plane's
 * trace store and at an OTLP/HTTP receiver in valid OTLP JSON.
 */
import { createServer, type Server } from 'node:http';
import { connect, createServer as createNetServer, type AddressInfo, type Server as NetServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SpanRecord } from '../../common/proto/telemetry.js';
import type { TapEvent } from '../../control-plane/observability/tap.js';
import type { TraceSummary, TraceView } from '../../control-plane/observability/traces.js';
import { request } from 'undici';
import { get, skeinCli } from '../identity/mesh.js';
import { ADMIN_TOKEN } from '../control-plane/harness.js';
import { freePorts, Processes, skeinBin, waitUntil, writeTempConfig } from '../support/index.js';
import { call, startObservedMesh, type ObservedMesh } from './mesh.js';
import { otlpTraceProblems } from './otlp-structure.js';
import { openEvents } from './sse.js';

const procs = new Processes();
let mesh: ObservedMesh;
let receiver: Server;
let otlpEndpoint: string;
const otlpBodies: { path: string; contentType: string; body: unknown }[] = [];

beforeAll(async () => {
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      otlpBodies.push({ path: req.url ?? '', contentType: req.headers['content-type'] ?? '', body: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  otlpEndpoint = `http://127.0.0.1:${(receiver.address() as { port: number }).port}`;
  mesh = await startObservedMesh(procs, { env: { SKEIN_OTLP_ENDPOINT: otlpEndpoint } });
}, 90_000);

afterAll(async () => {
  await procs.killAll();
  await mesh?.close();
  await new Promise((resolve) => receiver?.close(resolve));
});

describe('tap', () => {
  it('streams each request through the service within a second, filtered', async () => {
    const all = await openEvents<TapEvent>(`${mesh.cp.adminUrl}/api/v1/tap?service=backend`);
    const failures = await openEvents<TapEvent>(`${mesh.cp.adminUrl}/api/v1/tap?service=backend&status=5xx`);
    expect(all.status).toBe(200);
    try {
      // The tap opens on the sidecars a moment after the subscription: probe until rows flow.
      await waitUntil(async () => {
        await call(mesh, 'backend', '/warmup');
        return all.events.length > 0;
      }, { timeoutMs: 10_000, intervalMs: 100, what: 'the first tap row' });
      for (let i = 0; i < 5; i++) {
        const sentAt = Date.now();
        const status = i === 4 ? 500 : 200;
        await call(mesh, 'backend', `/probe-${i}?status=${status}`);
        const row = await waitUntil(() => all.events.find((e) => e.data.path === `/probe-${i}` && e.data.direction === 'inbound'), {
          timeoutMs: 3_000,
          intervalMs: 10,
          what: `tap row for /probe-${i}`,
        });
        expect(row.at - sentAt).toBeLessThan(1_000);
        expect(row.data).toMatchObject({ service: 'backend', source: 'web', destination: 'backend', method: 'GET', status });
        expect(row.data.traceId).toMatch(/^[0-9a-f]{32}$/);
        expect(row.data.latencyMs).toBeGreaterThan(0);
      }
      await waitUntil(() => failures.events.some((e) => e.data.path === '/probe-4'), { timeoutMs: 3_000, what: 'the 500 in the 5xx tap' });
      expect(failures.events.every((e) => e.data.status >= 500)).toBe(true);
      // Queries never leave the sidecar.
      expect(all.events.every((e) => !e.data.path.includes('?'))).toBe(true);
    } finally {
      all.close();
      failures.close();
    }
    // The last subscriber gone, the sidecars stop tapping.
    await waitUntil(() => mesh.backendV1.child.output().includes('tap closed by the control plane'), { timeoutMs: 5_000, what: 'tap-stop to reach backend v1' });
  });

  it('skein tap prints one line per request and stops after --max-rows', async () => {
    let running = true;
    const load = (async () => {
      while (running) await call(mesh, 'backend', '/cli-tap').catch(() => undefined);
    })();
    try {
      const result = await skeinCli(procs, mesh.cp, ['tap', 'backend', '--path', '/cli-tap', '--max-rows', '3']);
      expect(result.code, result.output).toBe(0);
      const lines = result.output.split('\n').filter((l) => l.includes('/cli-tap'));
      expect(lines).toHaveLength(3);
      expect(lines[0]).toMatch(/^\d{4}-\d\d-\d\dT\S+Z (in {2}web -> backend|out \S+ -> \S+) GET \/cli-tap 200 [\d.]+ms trace=[0-9a-f]{32} \(backend \S+\)$/);
    } finally {
      running = false;
      await load;
    }
  });

  it('skein tap stops quietly once the reader of its output goes away (`skein tap backend | head -1`)', async () => {
    let running = true;
    const load = (async () => {
      while (running) await call(mesh, 'backend', '/cli-pipe').catch(() => undefined);
    })();
    try {
      const tap = procs.spawn('skein tap | head', process.execPath, [skeinBin, 'tap', 'backend', '--path', '/cli-pipe', '--control-plane', mesh.cp.adminUrl], { SKEIN_ADMIN_TOKEN: ADMIN_TOKEN });
      await waitUntil(() => tap.output().includes('GET /cli-pipe'), { timeoutMs: 10_000, what: 'the first tap row' });
      tap.process.stdout!.destroy();
      await waitUntil(() => tap.hasExited, { timeoutMs: 10_000, what: 'skein tap to exit' });
      const exit = await tap.exited;
      expect(tap.output()).not.toMatch(/EPIPE|\n\s+at /);
      expect(exit.code, tap.output()).toBe(0);
    } finally {
      running = false;
      await load;
    }
  });

  it('answers 400 without a service', async () => {
    const res = await fetch(`${mesh.cp.adminUrl}/api/v1/tap`);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('bad-request');
  });

  it('answers 400 naming a malformed parameter and 404 for an unknown service instead of opening a stream', async () => {
    for (const [query, name] of [
      ['service=NOPE', 'service'],
      ['service=backend&method=G%20T', 'method'],
      ['service=backend&path=api', 'path'],
      ['service=backend&status=abc', 'status'],
      ['service=backend&status=6xx', 'status'],
      ['service=backend&direction=sideways', 'direction'],
      ['service=backend&peer=Web', 'peer'],
    ] as const) {
      const answer = await errorOf(`/api/v1/tap?${query}`);
      expect(answer, query).toMatchObject({ status: 400, code: 'bad-request' });
      expect(answer.message, query).toMatch(new RegExp(`^${name} must .* \\(got "`));
    }
    expect(await errorOf('/api/v1/tap?service=nosuch')).toMatchObject({ status: 404, code: 'not-found', message: 'unknown service nosuch: no policy, routes or instances' });
    expect(await errorOf('/api/v1/tap?service=unknown')).toMatchObject({ status: 404, code: 'not-found' });
  });
});

/** The status and error of a request expected to fail (an open stream would fail the test). */
async function errorOf(path: string): Promise<{ status: number; code: string; message: string }> {
  const res = await fetch(`${mesh.cp.adminUrl}${path}`);
  const contentType = res.headers.get('content-type') ?? '';
  if (!contentType.startsWith('application/json')) {
    await res.body?.cancel();
    throw new Error(`${path} answered ${res.status} ${contentType}`);
  }
  const { error } = (await res.json()) as { error: { code: string; message: string } };
  return { status: res.status, ...error };
}

/** A span as the OTLP receiver got it, with its resource's `service.name`. */
interface ExportedSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  kind: number;
  service?: string;
  attributes: { key: string; value: { stringValue?: string; intValue?: string } }[];
  status: { code: number; message?: string };
}

/** The spans of `traceId` the OTLP receiver has got so far. */
function exportedSpans(traceId: string): ExportedSpan[] {
  type Body = { resourceSpans: { resource: { attributes: ExportedSpan['attributes'] }; scopeSpans: { spans: ExportedSpan[] }[] }[] };
  return otlpBodies
    .flatMap((b) =>
      (b.body as Body).resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans.map((s) => ({ ...s, service: rs.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue })))),
    )
    .filter((s) => s.traceId === traceId);
}

/** Trace `traceId` from the control plane's store once it holds `spans` spans. */
function storedTrace(traceId: string, spans: number): Promise<TraceView> {
  return waitUntil(
    async () => {
      const r = await fetch(`${mesh.cp.adminUrl}/api/v1/traces/${traceId}`);
      const t = r.status === 200 ? ((await r.json()) as TraceView) : undefined;
      return t?.spans === spans ? t : undefined;
    },
    { timeoutMs: 10_000, what: `${spans} spans of trace ${traceId}` },
  );
}

describe('traces', () => {
  /** Trace `traceId` from the store once it holds the caller's client span and the three server spans of its tries (its retries' spans come with its own). */
  const retriedTrace = (traceId: string): Promise<TraceView> =>
    waitUntil(
      async () => {
        const r = await fetch(`${mesh.cp.adminUrl}/api/v1/traces/${traceId}`);
        const t = r.status === 200 ? ((await r.json()) as TraceView) : undefined;
        return t && t.spanList.some((s) => s.kind === 'client') && t.spanList.filter((s) => s.kind === 'server').length === 3 ? t : undefined;
      },
      { timeoutMs: 10_000, what: 'the retried trace' },
    );

  it('records one span per hop of a two-hop request with the right parents, in the store and over OTLP', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const clientSpan = '00f067aa0ba902b7';
    const res = await call(mesh, 'frontend', '/chain?delay=5', { traceparent: `00-${traceId}-${clientSpan}-01` });
    expect(res.status).toBe(200);

    const trace = await storedTrace(traceId, 4);
    const find = (service: string, kind: SpanRecord['kind']) => trace.spanList.find((s) => s.service === service && s.kind === kind)!;
    const webOut = find('web', 'client');
    const frontendIn = find('frontend', 'server');
    const frontendOut = find('frontend', 'client');
    const backendIn = find('backend', 'server');
    expect(webOut).toMatchObject({ parentSpanId: clientSpan, destination: 'frontend', path: '/chain', status: 200 });
    expect(frontendIn).toMatchObject({ parentSpanId: webOut.spanId, source: 'web', destination: 'frontend' });
    expect(frontendOut).toMatchObject({ parentSpanId: frontendIn.spanId, source: 'frontend', destination: 'backend' });
    expect(backendIn).toMatchObject({ parentSpanId: frontendOut.spanId, source: 'frontend', destination: 'backend', status: 200 });
    // Each hop lies within its parent's time, give or take clock reads in different processes.
    expect(backendIn.durationMs).toBeLessThanOrEqual(webOut.durationMs + 1);
    expect(backendIn.startMs).toBeGreaterThanOrEqual(webOut.startMs - 5);

    const list = (await (await fetch(`${mesh.cp.adminUrl}/api/v1/traces?service=backend&limit=500`)).json()) as { traces: TraceSummary[] };
    // In call order, though backend's sidecar, whose hop ends first, usually reports first.
    expect(list.traces.find((t) => t.traceId === traceId)).toMatchObject({ root: 'GET frontend /chain', spans: 4, error: false, services: ['web', 'frontend', 'backend'] });

    // The same spans reached the OTLP receiver, as valid OTLP JSON, one resource per sidecar.
    await waitUntil(() => exportedSpans(traceId).length === 4, { timeoutMs: 10_000, what: 'four spans at the OTLP receiver' });
    for (const b of otlpBodies) {
      expect(b.path).toBe('/v1/traces');
      expect(b.contentType).toBe('application/json');
      expect(otlpTraceProblems(b.body)).toEqual([]);
    }
    const exported = exportedSpans(traceId);
    expect(exported.find((s) => s.spanId === backendIn.spanId)).toMatchObject({ parentSpanId: frontendOut.spanId, kind: 2, service: 'backend' });
    expect(exported.find((s) => s.spanId === webOut.spanId)).toMatchObject({ parentSpanId: clientSpan, kind: 3, service: 'web' });
  });

  it('answers 400 naming a malformed limit or service, 404 for an unknown service', async () => {
    for (const limit of ['-1', '0', 'abc', '1.5']) {
      expect(await errorOf(`/api/v1/traces?limit=${limit}`), limit).toMatchObject({ status: 400, code: 'bad-request', message: `limit must be a whole number of at least 1 (got "${limit}")` });
    }
    await waitUntil(async () => ((await (await fetch(`${mesh.cp.adminUrl}/api/v1/traces`)).json()) as { traces: unknown[] }).traces.length >= 2, { what: 'two traces' });
    const one = (await (await fetch(`${mesh.cp.adminUrl}/api/v1/traces?limit=1`)).json()) as { traces: unknown[] };
    expect(one.traces).toHaveLength(1);
    expect(await errorOf('/api/v1/traces?service=NOPE')).toMatchObject({ status: 400, message: expect.stringMatching(/^service must be a DNS label/) });
    expect(await errorOf('/api/v1/traces?service=nosuch')).toMatchObject({ status: 404, code: 'not-found', message: 'unknown service nosuch: no policy, routes or instances' });
    expect(await errorOf('/api/v1/traces?service=unknown')).toMatchObject({ status: 404, code: 'not-found' });
  });

  it('records retries as events of the caller’s span', async () => {
    const traceId = 'aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbb';
    // 503 is a gateway error: retried twice by default, then answered.
    const res = await call(mesh, 'backend', '/flaky?status=503', { traceparent: `00-${traceId}-1111111111111111-01` });
    expect(res.status).toBe(503);
    const trace = await retriedTrace(traceId);
    const client = trace.spanList.find((s) => s.kind === 'client' && s.resendCount === 0)!;
    expect(client.attempts).toBe(3);
    expect(client.events.map((e) => e.name)).toEqual(['retry', 'retry']);
    expect(client.events[0]!.attributes).toMatchObject({ reason: 'gateway-error', attempt: 1 });
    expect(trace.error).toBe(true);
  });

  it("records each retry as a span of its own, under which the server span of the try it sent hangs, in the store and over OTLP", async () => {
    const traceId = 'ccccccccccccccccdddddddddddddddd';
    // Retried twice (503 is a gateway error), so backend's sidecars serve tries 1, 2 and 3 of web's.
    expect((await call(mesh, 'backend', '/flaky-attempts?status=503', { traceparent: `00-${traceId}-2222222222222222-01` })).status).toBe(503);
    const trace = await retriedTrace(traceId);
    const client = trace.spanList.find((s) => s.kind === 'client' && s.resendCount === 0)!;
    expect(client).toMatchObject({ service: 'web', parentSpanId: '2222222222222222', attempts: 3, callerAttempt: 0 });
    // The hop's span stands for the request and its first try; each retry is a client span under it (OpenTelemetry's resend).
    const retries = trace.spanList.filter((s) => s.kind === 'client' && s.resendCount > 0).sort((a, b) => a.resendCount - b.resendCount);
    expect(retries.map((s) => [s.service, s.parentSpanId, s.resendCount, s.status, s.attempts, s.failed])).toEqual([1, 2].map((n) => ['web', client.spanId, n, 503, 1, true]));
    for (const r of retries) {
      expect(r.startMs).toBeGreaterThanOrEqual(client.startMs);
      expect(r.startMs + r.durationMs).toBeLessThanOrEqual(client.startMs + client.durationMs + 0.01);
    }
    // Ordered by the attempt recorded, not by start time: the spans come from two processes' clocks.
    const servers = trace.spanList.filter((s) => s.kind === 'server').sort((a, b) => a.callerAttempt - b.callerAttempt);
    expect(servers.map((s) => [s.service, s.parentSpanId, s.attempts, s.callerAttempt])).toEqual([
      ['backend', client.spanId, 1, 1],
      ['backend', retries[0]!.spanId, 1, 2],
      ['backend', retries[1]!.spanId, 1, 3],
    ]);

    await waitUntil(() => exportedSpans(traceId).length === 6, { timeoutMs: 10_000, what: 'the retried trace at the OTLP receiver' });
    const attribute = (spanId: string, key: string) => exportedSpans(traceId).find((s) => s.spanId === spanId)!.attributes.find((a) => a.key === key)?.value.intValue;
    expect(servers.map((s) => attribute(s.spanId, 'skein.caller_attempt'))).toEqual(['1', '2', '3']);
    expect(attribute(client.spanId, 'skein.caller_attempt')).toBeUndefined();
    expect([client, ...retries].map((s) => attribute(s.spanId, 'http.request.resend_count'))).toEqual([undefined, '1', '2']);
    expect(exportedSpans(traceId).find((s) => s.spanId === retries[1]!.spanId)).toMatchObject({ parentSpanId: client.spanId, kind: 3, service: 'web' });
  });
});

/**
 * Requests a sidecar answers before forwarding them (SPEC §6, as Envoy, whose span exists
 * before its router, fault and authz filters run): each hop still continues the caller's
 * trace, and its span, marked as an error, carries the answer's `x-skein-reason`.
 */
describe("spans of a sidecar's own answers", () => {
  /** The span `service`'s sidecar recorded for its own answer, checked in the store and at the OTLP receiver. */
  async function ownAnswerSpan(trace: TraceView, service: string, expected: Partial<SpanRecord> & { status: number; reason: string }): Promise<SpanRecord> {
    expect(trace.error).toBe(true);
    const span = trace.spanList.find((s) => s.service === service && s.reason !== undefined)!;
    expect(span).toMatchObject({ traceId: trace.traceId, ...expected });
    expect(span.spanId).toMatch(/^[0-9a-f]{16}$/);
    await expectExportedError(trace.traceId, span.spanId, service, `HTTP ${expected.status} ${expected.reason}`, expected.reason);
    return span;
  }

  /** The OTLP receiver got span `spanId` from `service` with an error status and `skein.reason`. */
  async function expectExportedError(traceId: string, spanId: string, service: string, message: string, reason: string): Promise<ExportedSpan> {
    const exported = await waitUntil(() => exportedSpans(traceId).find((s) => s.spanId === spanId), { timeoutMs: 10_000, what: `span ${spanId} at the OTLP receiver` });
    expect(exported).toMatchObject({ service, status: { code: 2, message } });
    expect(exported.attributes.find((a) => a.key === 'skein.reason')?.value).toEqual({ stringValue: reason });
    return exported;
  }

  it('a fault abort: the calling sidecar’s client span, under the caller’s span', async () => {
    await mesh.cp.api.put('/api/v1/routes/chaos', [{ match: { pathPrefix: '/' }, fault: { abort: { percent: 100, status: 503 } } }]);
    await waitUntil(async () => (await get(mesh.web, 'chaos', '/probe')).reason === 'fault-injected', { what: "chaos's fault route at web's sidecar" });
    const traceId = 'fa0170000000000000000000000000a1';
    const res = await get(mesh.web, 'chaos', '/order', { traceparent: `00-${traceId}-1111111111111111-01` });
    expect([res.status, res.reason]).toEqual([503, 'fault-injected']);
    const trace = await storedTrace(traceId, 1);
    await ownAnswerSpan(trace, 'web', { kind: 'client', parentSpanId: '1111111111111111', destination: 'chaos', path: '/order', status: 503, reason: 'fault-injected', attempts: 0 });
  });

  it('no route: a name the snapshot does not know, marked as an error though a 404', async () => {
    const traceId = '40400000000000000000000000000404';
    const res = await get(mesh.web, 'nowhere', '/x', { traceparent: `00-${traceId}-2222222222222222-01` });
    expect([res.status, res.reason]).toEqual([404, 'no-route']);
    const trace = await storedTrace(traceId, 1);
    await ownAnswerSpan(trace, 'web', { kind: 'client', parentSpanId: '2222222222222222', destination: 'nowhere', status: 404, reason: 'no-route' });
    // The name asked for is no service, yet the traces of its answers are listed under it.
    const list = (await (await fetch(`${mesh.cp.adminUrl}/api/v1/traces?service=nowhere`)).json()) as { traces: TraceSummary[] };
    expect(list.traces).toEqual([expect.objectContaining({ traceId, root: 'GET nowhere /x', services: ['web', 'nowhere'], error: true })]);
  });

  it("a call its intentions deny: the callee's server span under the caller's client span", async () => {
    // Nothing else here calls frontend from backend.
    await mesh.cp.api.put('/api/v1/intentions', { defaultAction: 'allow', rules: [{ source: 'backend', destination: 'frontend', action: 'deny' }] });
    await waitUntil(async () => (await get(mesh.backendV1, 'frontend', '/probe')).reason === 'denied', { what: "the intention at frontend's sidecar" });
    const traceId = 'de4ed000000000000000000000000403';
    const res = await get(mesh.backendV1, 'frontend', '/admin', { traceparent: `00-${traceId}-3333333333333333-01` });
    expect([res.status, res.reason]).toEqual([403, 'denied']);
    const trace = await storedTrace(traceId, 2);
    const client = trace.spanList.find((s) => s.kind === 'client')!;
    // The caller's sidecar relayed the answer: its span has no reason of its own.
    expect(client).toMatchObject({ service: 'backend', parentSpanId: '3333333333333333', status: 403 });
    expect(client.reason).toBeUndefined();
    await ownAnswerSpan(trace, 'frontend', { kind: 'server', parentSpanId: client.spanId, source: 'backend', destination: 'frontend', status: 403, reason: 'denied', attempts: 0 });
  });

  it('an app not healthy yet: the inbound sidecar’s server span (static mode, so OTLP only)', async () => {
    // Nothing listens on the app's port: the sidecar has never seen its app healthy.
    const [appPort] = await freePorts(1);
    const stock = await procs.sidecar({ service: 'stock', appPort: appPort!, config: writeTempConfig({ services: {} }), waitFor: '/live', env: { SKEIN_OTLP_ENDPOINT: otlpEndpoint } });
    const traceId = '4eadd000000000000000000000000503';
    const res = await request(`http://127.0.0.1:${stock.inboundPort}/items`, { headers: { traceparent: `00-${traceId}-4444444444444444-01` } });
    await res.body.dump();
    expect([res.statusCode, res.headers['x-skein-reason']]).toEqual([503, 'no-healthy-endpoints']);
    const [span] = await waitUntil(() => (exportedSpans(traceId).length > 0 ? exportedSpans(traceId) : undefined), { timeoutMs: 10_000, what: "stock's span at the OTLP receiver" });
    expect(span).toMatchObject({ kind: 2, parentSpanId: '4444444444444444' });
    await expectExportedError(traceId, span!.spanId, 'stock', 'HTTP 503 no-healthy-endpoints', 'no-healthy-endpoints');
  });

  it("a WebSocket upgrade's answers the sidecar made: an endpoint that never answers, one that resets, none listening (static mode, so OTLP only)", async () => {
    // One reads the upgrade and never answers it; the other resets the connection once it came.
    const silent = createNetServer((socket) => socket.on('error', () => {}).resume());
    const resetting = createNetServer((socket) => socket.once('data', () => socket.resetAndDestroy()));
    const servers = [silent, resetting];
    for (const server of servers) await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const at = (server: NetServer) => [{ address: '127.0.0.1', port: (server.address() as AddressInfo).port }];
    try {
      const [appPort, dead] = await freePorts(2);
      const config = writeTempConfig({
        services: {
          stuck: { timeout: '300ms', endpoints: at(silent) },
          flaky: { endpoints: at(resetting) },
          gone: { endpoints: [{ address: '127.0.0.1', port: dead! }] },
        },
      });
      const web = await procs.sidecar({ service: 'ws-web', appPort: appPort!, config, waitFor: '/live', env: { SKEIN_OTLP_ENDPOINT: otlpEndpoint } });
      const cases = [
        { host: 'stuck', traceId: '5eb50c4e700000000000000000000504', status: 504, reason: 'timeout' },
        { host: 'flaky', traceId: '5eb50c4e700000000000000000000503', status: 503, reason: 'retries-exhausted' },
        { host: 'gone', traceId: '5eb50c4e70000000000000000000c503', status: 503, reason: 'upstream-connect-failure' },
      ];
      for (const { host, traceId, status, reason } of cases) {
        const client = connect(web.outboundPort, '127.0.0.1');
        client.write(`GET /chat HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\ntraceparent: 00-${traceId}-5555555555555555-01\r\n\r\n`);
        const answer = await new Promise<string>((resolve, reject) => {
          let text = '';
          client.on('data', (c: Buffer) => (text += c.toString('latin1')));
          client.on('close', () => resolve(text));
          client.on('error', reject);
        });
        expect(answer, host).toMatch(new RegExp(`^HTTP/1\\.1 ${status} [^\\r]*\\r\\n`));
        expect(answer, host).toMatch(new RegExp(`\\r\\nx-skein-reason: ${reason}\\r\\n`, 'i'));
        const [span] = await waitUntil(() => (exportedSpans(traceId).length > 0 ? exportedSpans(traceId) : undefined), { timeoutMs: 10_000, what: `ws-web's span of the upgrade to ${host} at the OTLP receiver` });
        expect(span).toMatchObject({ kind: 3, parentSpanId: '5555555555555555' });
        await expectExportedError(traceId, span!.spanId, 'ws-web', `HTTP ${status} ${reason}`, reason);
      }
    } finally {
      for (const server of servers) await new Promise((resolve) => server.close(resolve));
    }
  });
});
