/**
 * gRPC calls are observed like HTTP ones, with their grpc-status: a call answered with a
 * non-OK status counts as a failure in the golden metrics, and shows its grpc-status in the
 * tap and in its span. A grpc-status that is no gRPC code (`32`, `abc`, `-1`) counts as
 * UNKNOWN (2): a failure, under the answer's own HTTP code. An answer that ends with no
 * trailers and no status at all was cut short: its caller gets 14 UNAVAILABLE, counted so
 * (test/sidecar/grpc-mid-stream.test.ts).
 */
import * as grpc from '@grpc/grpc-js';
import { connect as h2connect, createServer as h2server, type Http2Server, type OutgoingHttpHeaders } from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StatsView } from '../../control-plane/observability/stats.js';
import type { TapEvent } from '../../control-plane/observability/tap.js';
import type { TraceView } from '../../control-plane/observability/traces.js';
import { startControlPlane, type ControlPlaneProcess } from '../control-plane/harness.js';
import { startMeshSidecar, type MeshSidecar } from '../identity/mesh.js';
import { echoHandler, Processes, startUpstream, waitUntil, type TestUpstream } from '../support/index.js';
import { openEvents } from './sse.js';

const identity = (b: Buffer): Buffer => b;
const definition: grpc.ServiceDefinition = {
  Echo: { path: '/test.Echo/Echo', requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity },
};
interface EchoClient extends grpc.Client {
  Echo(req: Buffer, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): void;
}

const procs = new Processes();
let cp: ControlPlaneProcess;
let server: grpc.Server;
/** A raw HTTP/2 gRPC app (service `odd`) answering whatever grpc-status its path names. */
let oddApp: Http2Server;
let odd: MeshSidecar;
let webApp: TestUpstream;
let web: MeshSidecar;
let client: EchoClient;

beforeAll(async () => {
  server = new grpc.Server();
  server.addService(definition, {
    Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      if (call.request.toString() === 'missing') cb({ code: grpc.status.NOT_FOUND, details: 'no such thing' });
      else cb(null, call.request);
    },
  });
  const appPort = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))));
  oddApp = h2server();
  oddApp.on('stream', (stream, headers) => {
    if (headers[':path'] === '/health') {
      stream.respond({ ':status': 200 });
      stream.end('ok');
      return;
    }
    // /odd.Echo/<status>: that grpc-status in the trailers; `none`: no trailers (node sends empty ones as a bare END_STREAM); `head-<status>`: a trailers-only answer.
    const status = String(headers[':path']).split('/').pop()!;
    stream.resume();
    stream.on('end', () => {
      if (status.startsWith('head-')) {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': status.slice(5) }, { endStream: true });
        return;
      }
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers(status === 'none' ? {} : { 'grpc-status': status }));
      stream.end(Buffer.alloc(5));
    });
  });
  await new Promise<void>((resolve) => oddApp.listen(0, '127.0.0.1', resolve));
  cp = await startControlPlane(procs);
  webApp = await startUpstream(echoHandler('web'));
  [web, , odd] = await Promise.all([
    startMeshSidecar(procs, cp, { service: 'web', appPort: webApp.port }),
    startMeshSidecar(procs, cp, { service: 'catalog', appPort, extraArgs: ['--app-protocol', 'grpc'] }),
    startMeshSidecar(procs, cp, { service: 'odd', appPort: (oddApp.address() as { port: number }).port, extraArgs: ['--app-protocol', 'grpc'] }),
  ]);
  const Ctor = grpc.makeGenericClientConstructor(definition, 'Echo');
  client = new Ctor(web.outboundUrl.replace('http://', ''), grpc.credentials.createInsecure(), { 'grpc.default_authority': 'catalog' }) as unknown as EchoClient;
}, 90_000);

afterAll(async () => {
  client?.close();
  await procs.killAll();
  server?.forceShutdown();
  oddApp?.close();
  await webApp?.close();
});

const echo = (text: string, md = new grpc.Metadata()) =>
  new Promise<grpc.ServiceError | null>((resolve) => client.Echo(Buffer.from(text), md, (err) => resolve(err)));

describe('gRPC observability', () => {
  it('counts non-OK grpc-status as failures and shows it in the tap and the span', async () => {
    // The first call may race the snapshot that says catalog speaks gRPC: wait until calls work.
    await waitUntil(async () => (await echo('warm')) === null, { timeoutMs: 15_000, what: 'a gRPC call through the mesh' });
    const tap = await openEvents<TapEvent>(`${cp.adminUrl}/api/v1/tap?service=catalog`);
    try {
      await waitUntil(async () => {
        await echo('probe');
        return tap.events.length > 0;
      }, { timeoutMs: 10_000, intervalMs: 100, what: 'the tap to open' });
      const traceId = 'cccccccccccccccccccccccccccccccc';
      const md = new grpc.Metadata();
      md.set('traceparent', `00-${traceId}-2222222222222222-01`);
      const err = await echo('missing', md);
      expect(err?.code).toBe(grpc.status.NOT_FOUND);
      const row = await waitUntil(() => tap.events.find((e) => e.data.traceId === traceId), { timeoutMs: 3_000, what: 'the failed call in the tap' });
      expect(row.data).toMatchObject({ method: 'POST', path: '/test.Echo/Echo', status: 200, grpcStatus: 5, source: 'web', destination: 'catalog' });
      const trace = await waitUntil(async () => {
        const r = await fetch(`${cp.adminUrl}/api/v1/traces/${traceId}`);
        const t = r.status === 200 ? ((await r.json()) as TraceView) : undefined;
        return t && t.spans === 2 ? t : undefined;
      }, { timeoutMs: 10_000, what: 'both spans of the gRPC call' });
      expect(trace.error).toBe(true);
      expect(trace.spanList.map((s) => s.grpcStatus)).toEqual([5, 5]);
    } finally {
      tap.close();
    }

    for (let i = 0; i < 3; i++) expect(await echo('missing')).not.toBeNull();
    // (Warm-up calls that raced the first snapshot may have failed too, hence at least four.)
    const view = await waitUntil(async () => {
      const v = (await cp.api.get<StatsView>('/api/v1/stats?service=catalog')).body;
      const e = v.edges.find((x) => x.source === 'web' && x.destination === 'catalog');
      const svc = v.services.find((x) => x.service === 'catalog');
      return e && svc && e['1m'].failures >= 4 && svc['1m'].failures >= 4 ? v : undefined;
    }, { timeoutMs: 10_000, what: 'four failed gRPC calls in the stats' });
    const edge = view.edges.find((x) => x.source === 'web' && x.destination === 'catalog')!;
    expect(edge['1m'].requests - edge['1m'].failures).toBeGreaterThanOrEqual(2);
    expect(edge['1m'].successRate).toBeLessThan(1);
    expect(view.services.find((x) => x.service === 'catalog')!['1m'].successRate).toBeLessThan(1);
  });

  it('counts a grpc-status that is no gRPC code as UNKNOWN (2), and an answer ended without any as UNAVAILABLE (14): failures under HTTP 200, in the metrics, the stats and the span', async () => {
    const client = h2connect(web.outboundUrl);
    // Stream events say whether a request failed; a reset of the connection after the answers must not be an uncaught exception.
    client.on('error', () => {});
    /** One call to odd; resolves with the grpc-status the caller got ('' for none). */
    const call = (status: string, headers: OutgoingHttpHeaders = {}) =>
      new Promise<string>((resolve, reject) => {
        const stream = client.request({ ':method': 'POST', ':path': `/odd.Echo/${status}`, ':authority': 'odd', 'content-type': 'application/grpc', te: 'trailers', ...headers });
        let got = '';
        stream.on('response', (h) => (got = String(h['grpc-status'] ?? '')));
        stream.on('trailers', (t) => (got = String(t['grpc-status'] ?? got)));
        stream.on('error', reject);
        stream.on('close', () => resolve(got));
        stream.resume();
        stream.end(Buffer.alloc(5));
      });
    // Calls only once web's snapshot has odd as a gRPC service with an endpoint, so each one reaches odd's app.
    await waitUntil(async () => {
      const { snapshot } = (await (await fetch(`${web.adminUrl}/config`)).json()) as { snapshot: { services: Record<string, { protocol?: string; endpoints?: unknown[] }> } };
      return snapshot.services.odd?.protocol === 'grpc' && (snapshot.services.odd.endpoints?.length ?? 0) > 0;
    }, { timeoutMs: 15_000, what: 'odd in web\'s snapshot' });
    const seen: string[] = [];
    try {
      for (const status of ['0', '32', '40', '99', 'abc', '-1', 'none', 'head-99', 'head-32']) seen.push(await call(status));
      seen.push(await call('none', { traceparent: '00-dddddddddddddddddddddddddddddddd-2222222222222222-01' }));
    } finally {
      client.close();
    }
    // Relayed as they came, and only the counting reads them; but an answer that ended without
    // any status, which odd's sidecar ends with 14 as cut short (before: relayed without one).
    expect(seen).toEqual(['0', '32', '40', '99', 'abc', '-1', '14', '99', '32', '14']);

    // At the caller and at odd's own sidecar: HTTP 200 each, OK once, UNKNOWN seven times (once 32 read as code 201 OK, abc as code NaN, -1 as plain HTTP) and UNAVAILABLE twice (before: UNKNOWN).
    for (const sidecar of [web, odd]) {
      const lines = (await (await fetch(`${sidecar.adminUrl}/metrics`)).text()).split('\n').filter((l) => l.startsWith('skein_requests_total{') && l.includes('destination="odd"'));
      const counts = Object.fromEntries(lines.map((l) => [/code="([^"]*)".*grpc_status="([^"]*)"/.exec(l)!.slice(1).join('/'), Number(l.split(' ').pop())]));
      expect(counts, lines.join('\n')).toEqual({ '200/0': 1, '200/2': 7, '200/14': 2 });
    }

    const stats = await waitUntil(async () => {
      const v = (await cp.api.get<StatsView>('/api/v1/stats?service=odd')).body;
      const e = v.edges.find((x) => x.source === 'web' && x.destination === 'odd');
      return e && e['1m'].requests === 10 ? e : undefined;
    }, { timeoutMs: 10_000, what: 'the ten calls to odd in the stats' });
    expect(stats['1m'].failures).toBe(9);

    const trace = await waitUntil(async () => {
      const r = await fetch(`${cp.adminUrl}/api/v1/traces/dddddddddddddddddddddddddddddddd`);
      const t = r.status === 200 ? ((await r.json()) as TraceView) : undefined;
      return t && t.spans === 2 ? t : undefined;
    }, { timeoutMs: 10_000, what: 'both spans of the call answered without a grpc-status' });
    expect(trace.spanList.map((s) => [s.status, s.grpcStatus])).toEqual([[200, 14], [200, 14]]);
    expect(trace.error).toBe(true);
  });
});
