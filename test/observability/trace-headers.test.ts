/**
 * Incoming trace headers read as the W3C trace-context and B3 specifications say, through a
 * real sidecar to an app that echoes what it received: two `traceparent` lines start a new
 * trace (W3C test suite, test_traceparent_duplicated), several `tracestate` lines go on as
 * one list without its invalid members, `x-b3-sampled: false` is not sampled, `x-b3-flags: 1`
 * (debug) is sampled whatever `x-b3-sampled` says and goes on as debug, and of two
 * `x-request-id` lines the first goes on alone; an app's answer reaches its caller with its
 * own trace headers. The same through a pair over mTLS, where the sidecars pass each other
 * only `traceparent` (and the debug flag).
 */
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { echoHandler, freePorts, makeCa, makeLeaf, Processes, startUpstream, tempDir, waitUntil, writeIdentity, writeTempConfig, type SpawnedSidecar, type TestUpstream } from '../support/index.js';

const procs = new Processes();
let app: TestUpstream;
let web: SpawnedSidecar;
/** web's twin with an identity: its endpoint is the mTLS inbound listener of `backend`, a sidecar in front of the same app. */
let meshWeb: SpawnedSidecar;

beforeAll(async () => {
  const echo = echoHandler('backend');
  app = await startUpstream((req, res) => {
    if (req.url !== '/traced-answer') return echo(req, res);
    res.writeHead(200, Object.fromEntries(APP_TRACE_ANSWER));
    res.end('ok');
  });
  const config = writeTempConfig({ services: { backend: { endpoints: [{ address: '127.0.0.1', port: app.port, labels: { version: 'v1' } }] } } });
  // No identity: the endpoint is the app itself, which gets every trace header form.
  web = await procs.sidecar({ service: 'web', appPort: app.port, config });
  const ca = makeCa();
  const dir = tempDir();
  const [backendInbound] = (await freePorts(1)) as [number];
  const meshConfig = writeTempConfig({ services: { backend: { endpoints: [{ address: '127.0.0.1', port: backendInbound, labels: { version: 'v1' } }] } } }, dir);
  await procs.sidecar({ service: 'backend', appPort: app.port, config: meshConfig, inboundPort: backendInbound, identity: writeIdentity(dir, 'backend', makeLeaf(ca, 'backend')) });
  meshWeb = await procs.sidecar({ service: 'web', appPort: app.port, config: meshConfig, identity: writeIdentity(dir, 'web', makeLeaf(ca, 'web')) });
}, 60_000);

afterAll(async () => {
  await procs.killAll();
  await app?.close();
});

/**
 * The trace headers the app got for a request sent through `via` (web unless given) with
 * `headers` (a flat list, so names may repeat; the app's node:http joins repeated ones with ", ").
 */
async function forwarded(headers: string[], via: SpawnedSidecar = web): Promise<Record<string, string | undefined>> {
  const res = await request(`${via.outboundUrl}/x`, { headers: ['host', 'backend', ...headers] });
  expect(res.statusCode).toBe(200);
  const got = ((await res.body.json()) as { headers: Record<string, string> }).headers;
  return { traceparent: got.traceparent, tracestate: got.tracestate, b3: got.b3, sampled: got['x-b3-sampled'], traceId: got['x-b3-traceid'], flags: got['x-b3-flags'], requestId: got['x-request-id'] };
}

const A = '0af7651916cd43dd8448eb211c80319c';
/** The trace headers the app answers `/traced-answer` with: its own, for its caller's tracing library to read. */
const APP_TRACE_ANSWER: [string, string][] = [
  ['traceparent', `00-${A}-00f067aa0ba902b7-01`],
  ['b3', `${A}-00f067aa0ba902b7-d-b7ad6b7169203331`],
  ['x-b3-traceid', A],
  ['x-b3-spanid', '00f067aa0ba902b7'],
  ['x-b3-parentspanid', 'b7ad6b7169203331'],
  ['x-b3-flags', '1'],
];
const B = '4bf92f3577b34da6a3ce929d0e0e4736';

describe('incoming trace headers', () => {
  it('starts a new trace for two traceparent lines, forwarding neither nor their tracestate', async () => {
    const got = await forwarded(['traceparent', `00-${A}-b7ad6b7169203331-01`, 'traceparent', `00-${B}-00f067aa0ba902b7-01`, 'tracestate', 'k=v']);
    const traceId = got.traceparent!.split('-')[1];
    expect(got.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    expect([A, B]).not.toContain(traceId);
    expect(got.b3).toMatch(new RegExp(`^${traceId}-[0-9a-f]{16}-1$`)); // a root span: no parent
    expect(got.tracestate).toBeUndefined();
  });

  it('forwards the tracestate lines of a valid traceparent as one list, in order', async () => {
    const got = await forwarded(['traceparent', `00-${A}-b7ad6b7169203331-01`, 'tracestate', 'a=1,b=2', 'tracestate', 'c=3']);
    expect(got.traceparent).toMatch(new RegExp(`^00-${A}-[0-9a-f]{16}-01$`));
    // One line: the echo app would show two joined with ", ".
    expect(got.tracestate).toBe('a=1,b=2,c=3');
  });

  it('drops the invalid members of a tracestate and keeps the valid ones in order, one sidecar or two', async () => {
    for (const via of [web, meshWeb]) {
      const got = await forwarded(['traceparent', `00-${A}-b7ad6b7169203331-01`, 'tracestate', 'a=1,Bad=2,a=3', 'tracestate', ' , b=4'], via);
      expect(got.traceparent).toMatch(new RegExp(`^00-${A}-[0-9a-f]{16}-01$`));
      expect(got.tracestate).toBe('a=1,b=4');
      const none = await forwarded(['traceparent', `00-${A}-b7ad6b7169203331-01`, 'tracestate', 'Bad=2'], via);
      expect(none.tracestate).toBeUndefined();
    }
  });

  it('reads x-b3-sampled false as not sampled, and x-b3-flags 1 (debug) as sampled over x-b3-sampled 0', async () => {
    const b3 = ['x-b3-traceid', A, 'x-b3-spanid', 'b7ad6b7169203331'];
    const unsampled = await forwarded([...b3, 'x-b3-sampled', 'false']);
    expect(unsampled.traceparent).toMatch(new RegExp(`^00-${A}-[0-9a-f]{16}-00$`));
    expect(unsampled.sampled).toBe('0');
    expect(unsampled.flags).toBeUndefined();
    // Debug goes on as debug, through one sidecar and through a pair that passes it beside the traceparent.
    for (const via of [web, meshWeb]) {
      const debug = await forwarded([...b3, 'x-b3-sampled', '0', 'x-b3-flags', '1'], via);
      expect(debug.traceparent).toMatch(new RegExp(`^00-${A}-[0-9a-f]{16}-01$`));
      expect(debug.flags).toBe('1');
      expect(debug.sampled).toBeUndefined(); // B3: debug implies sampled, so no x-b3-sampled beside it
      expect(debug.b3).toMatch(new RegExp(`^${A}-[0-9a-f]{16}-d-[0-9a-f]{16}$`));
    }
  });

  it('sends the first of two x-request-id lines on, alone, one sidecar or two', async () => {
    for (const via of [web, meshWeb]) {
      const got = await forwarded(['x-request-id', 'first-id', 'x-request-id', 'second-id'], via);
      expect(got.requestId).toBe('first-id');
    }
  });

  it('passes the trace headers of an app\'s answer back to the caller as the app wrote them, one sidecar or two', async () => {
    for (const via of [web, meshWeb]) {
      const res = await request(`${via.outboundUrl}/traced-answer`, { headers: { host: 'backend' } });
      expect(res.statusCode).toBe(200);
      await res.body.text();
      for (const [name, value] of APP_TRACE_ANSWER) expect(res.headers[name], name).toBe(value);
    }
  });
});

/**
 * A retry is a request of its own to the upstream: with spans exported, it carries its own
 * span (a child of the hop's) as the parent in every trace format, so the upstream's span of
 * it hangs under the retry's span; without export, the hop's, as no span of it is recorded.
 */
describe('a retried request', () => {
  /** Trace headers of each try the flaky app got, in order; its first try of each path is answered 503. */
  const tries: Record<string, string | undefined>[] = [];
  const paths = new Set<string>();
  const otlpSpanIds = new Set<string>();
  let flaky: TestUpstream;

  beforeAll(async () => {
    flaky = await startUpstream((req, res) => {
      const h = req.headers as Record<string, string | undefined>;
      tries.push({ traceparent: h.traceparent, tracestate: h.tracestate, b3: h.b3, spanId: h['x-b3-spanid'], parentSpanId: h['x-b3-parentspanid'], traceId: h['x-b3-traceid'], requestId: h['x-request-id'], attempt: h['x-skein-attempt'] });
      if (paths.has(req.url!)) return res.end('ok');
      paths.add(req.url!);
      res.writeHead(503);
      res.end('not yet');
    });
  });

  afterAll(async () => {
    await flaky?.close();
  });

  async function retried(via: SpawnedSidecar, path: string): Promise<Record<string, string | undefined>[]> {
    tries.length = 0;
    const res = await request(`${via.outboundUrl}${path}`, { headers: { host: 'backend', traceparent: `00-${A}-b7ad6b7169203331-01`, tracestate: 'vendor=1', 'x-request-id': 'req-1' } });
    expect(res.statusCode).toBe(200);
    await res.body.dump();
    expect(tries).toHaveLength(2);
    return [...tries];
  }

  it('sends each retry with its own span as the parent when spans are exported, the hop’s span otherwise', async () => {
    const receiver = await startUpstream((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString()) as { resourceSpans: { scopeSpans: { spans: { spanId: string }[] }[] }[] };
        for (const rs of body.resourceSpans) for (const ss of rs.scopeSpans) for (const s of ss.spans) otlpSpanIds.add(s.spanId);
        res.end('{}');
      });
    });
    try {
      const config = writeTempConfig({ services: { backend: { retries: { backoff: { base: '1ms' } }, endpoints: [{ address: '127.0.0.1', port: flaky.port, labels: { version: 'v1' } }] } } });
      const exporting = await procs.sidecar({ service: 'web', appPort: app.port, config, env: { SKEIN_OTLP_ENDPOINT: receiver.url } });
      const [first, second] = (await retried(exporting, '/exported')) as [Record<string, string>, Record<string, string>];
      const hopSpan = first.spanId;
      expect(first).toMatchObject({ traceparent: `00-${A}-${hopSpan}-01`, b3: `${A}-${hopSpan}-1-b7ad6b7169203331`, parentSpanId: 'b7ad6b7169203331', attempt: '1' });
      const retrySpan = second.spanId;
      expect(retrySpan).toMatch(/^[0-9a-f]{16}$/);
      expect(retrySpan).not.toBe(hopSpan);
      // Every format names the retry's span, whose parent is the hop's; the rest goes on as on the first try.
      expect(second).toEqual({ traceparent: `00-${A}-${retrySpan}-01`, tracestate: 'vendor=1', b3: `${A}-${retrySpan}-1-${hopSpan}`, spanId: retrySpan, parentSpanId: hopSpan, traceId: A, requestId: 'req-1', attempt: '2' });
      // Both spans are exported, so the app's span of the retry has its parent in the trace.
      await waitUntil(() => otlpSpanIds.has(hopSpan) && otlpSpanIds.has(retrySpan), { timeoutMs: 10_000, what: 'the hop’s and the retry’s spans at the OTLP receiver' });

      // No export (static mode, no SKEIN_OTLP_ENDPOINT): no span of the retry is recorded, so it goes with the hop's.
      const quiet = await procs.sidecar({ service: 'web', appPort: app.port, config });
      const [one, two] = (await retried(quiet, '/not-exported')) as [Record<string, string>, Record<string, string>];
      expect(two).toEqual({ ...one, attempt: '2' });
    } finally {
      await receiver.close();
    }
  });
});
