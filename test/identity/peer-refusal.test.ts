/**
 * A peer sidecar that refuses the calling sidecar's certificate (here: issued by a CA the
 * peer does not trust, while the caller trusts the peer's) does so, under TLS 1.3, once the
 * caller's handshake is over, and node's TLS server sends no alert for it. Over the mux the
 * peer says so in a GOAWAY before closing, having read nothing: the caller answers
 * `503 upstream-connect-failure` naming the refusal, retries it as a connect failure (a POST
 * too, on another endpoint) and counts it as `refused-by-peer`. Over HTTP/2 (gRPC) the peer
 * says so in an HTTP/2 GOAWAY that took no stream, and the caller does the same (its answer
 * the gRPC form: 200, grpc-status 14).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { echoHandler, makeCa, makeLeaf, Processes, startUpstream, tempDir, writeIdentity, writeTempConfig, type SpawnedSidecar, type TestUpstream } from '../support/index.js';
import { grpcCall } from '../sidecar/grpc-fixture.js';
import { get, testAgent } from '../sidecar/http.js';
import { metric, scrape } from '../sidecar/resilience-fixture.js';

describe('a peer sidecar that refuses the calling sidecar\'s certificate', () => {
  const procs = new Processes();
  const agent = testAgent();
  const apps: TestUpstream[] = [];
  let lenientApp: TestUpstream;
  let strictApp: TestUpstream;
  let strict: SpawnedSidecar;
  let strictGrpc: SpawnedSidecar;
  let lenient: SpawnedSidecar;
  let caller: SpawnedSidecar;

  beforeAll(async () => {
    const meshCa = makeCa('Mesh CA');
    const otherCa = makeCa('Other CA');
    const bothCas = meshCa.certPem + otherCa.certPem;
    const dir = tempDir('skein-peer-refusal-');
    [strictApp, lenientApp] = await Promise.all([startUpstream(echoHandler('strict')), startUpstream(echoHandler('lenient'))]);
    apps.push(strictApp, lenientApp);
    // Two instances of orders with certificates of the mesh CA: one trusts that CA alone, the other the caller's too.
    const orders = (name: string, caPem: string, app: TestUpstream) =>
      procs.sidecar({ service: 'orders', appPort: app.port, identity: writeIdentity(dir, name, { ...makeLeaf(meshCa, 'orders'), caPem }), config: writeTempConfig({}, dir) });
    // A gRPC service whose one instance trusts the mesh CA alone; its app is never reached.
    const catalog = procs.sidecar({
      service: 'catalog',
      appPort: strictApp.port,
      identity: writeIdentity(dir, 'catalog', { ...makeLeaf(meshCa, 'catalog'), caPem: meshCa.certPem }),
      config: writeTempConfig({}, dir),
      extraArgs: ['--app-protocol', 'grpc'],
    });
    [strict, lenient, strictGrpc] = await Promise.all([orders('strict', meshCa.certPem, strictApp), orders('lenient', bothCas, lenientApp), catalog]);
    const endpoint = (sidecar: SpawnedSidecar, version: string) => ({ address: '127.0.0.1', port: sidecar.inboundPort, labels: { version } });
    caller = await procs.sidecar({
      service: 'gateway',
      appPort: (await startUpstream(echoHandler('gateway')).then((app) => (apps.push(app), app))).port,
      // The caller's certificate is of the other CA; it trusts both.
      identity: writeIdentity(dir, 'gateway', { ...makeLeaf(otherCa, 'gateway'), caPem: bothCas }),
      config: writeTempConfig(
        {
          services: {
            orders: {
              lb: 'round-robin',
              retries: { attempts: 2, backoff: { base: '1ms' } },
              // The refusing endpoint stays in the rotation, however often it refused before.
              outlierDetection: { consecutiveErrors: 1000 },
              subsets: { strict: { version: 'strict' }, lenient: { version: 'lenient' } },
              endpoints: [endpoint(strict, 'strict'), endpoint(lenient, 'lenient')],
            },
            catalog: {
              protocol: 'grpc',
              retries: { attempts: 2, backoff: { base: '1ms' } },
              outlierDetection: { consecutiveErrors: 1000 },
              endpoints: [endpoint(strictGrpc, 'strict')],
            },
          },
          routes: { orders: [{ match: { pathPrefix: '/', headers: { 'x-only': 'strict' } }, split: { strict: 100 } }, { match: { pathPrefix: '/' } }] },
        },
        dir,
      ),
    });
  });

  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') for (const s of [caller, strict, strictGrpc]) console.log(`--- ${s?.name} ---\n${s?.output()}`);
  });

  afterAll(async () => {
    await agent.close();
    await procs.killAll();
    await Promise.all(apps.map((app) => app.close()));
  });

  async function counts(destination = 'orders'): Promise<{ refused: number; connectFailureRetries: number; resetRetries: number }> {
    const s = await scrape(caller);
    return {
      refused: metric(s, 'skein_tls_handshake_failures_total', { reason: 'refused-by-peer' }),
      connectFailureRetries: metric(s, 'skein_retries_total', { destination, reason: 'connect-failure' }),
      resetRetries: metric(s, 'skein_retries_total', { destination, reason: 'reset' }),
    };
  }

  it.each(['GET', 'POST'])('%s: 503 upstream-connect-failure naming the refusal, every try retried as a connect failure and counted as `refused-by-peer`', async (method) => {
    const before = await counts();
    const res = await get(agent, `${caller.outboundUrl}/x`, { host: 'orders', 'x-only': 'strict' }, method, method === 'POST' ? 'a=b' : undefined);
    expect(res.status).toBe(503);
    expect(res.headers['x-skein-reason']).toBe('upstream-connect-failure');
    expect(res.text).toMatch(/the peer refused this sidecar's certificate: untrusted-certificate \(ERR_SKEIN_TLS_HANDSHAKE\)/);
    expect(await counts()).toEqual({ refused: before.refused + 3, connectFailureRetries: before.connectFailureRetries + 2, resetRetries: before.resetRetries });
    expect(strictApp.requests.filter((r) => r.url === '/x')).toEqual([]);
  });

  it('a POST is sent on to an endpoint that takes the certificate', async () => {
    const before = await counts();
    // Round robin: of two, one starts on the refusing endpoint.
    for (let i = 0; i < 2; i++) {
      const res = await get(agent, `${caller.outboundUrl}/x`, { host: 'orders' }, 'POST', 'a=b');
      expect(res.status).toBe(200);
      expect(res.json().name).toBe('lenient');
    }
    const after = await counts();
    expect(after.refused).toBeGreaterThan(before.refused);
    expect(after).toEqual({ refused: after.refused, connectFailureRetries: before.connectFailureRetries + (after.refused - before.refused), resetRetries: before.resetRetries });
    expect(lenientApp.requests.filter((r) => r.url === '/x' && r.method === 'POST')).toHaveLength(2);
    expect(strictApp.requests.filter((r) => r.url === '/x')).toEqual([]);
    // The refusing sidecar counted and logged its side.
    expect(metric(await scrape(strict), 'skein_tls_handshake_failures_total', { reason: 'untrusted-certificate' })).toBeGreaterThanOrEqual(after.refused);
  });

  it('gRPC (HTTP/2): UNAVAILABLE with upstream-connect-failure naming the refusal, every try retried as a connect failure and counted as `refused-by-peer`', async () => {
    const before = await counts('catalog');
    const refusingBefore = metric(await scrape(strictGrpc), 'skein_tls_handshake_failures_total', { reason: 'untrusted-certificate' });
    const r = await grpcCall(caller.outboundPort, 'catalog');
    expect(r).toMatchObject({ status: 200, reason: 'upstream-connect-failure', grpcStatus: '14' });
    expect(String(r.grpcMessage)).toBe(`could not connect to catalog at 127.0.0.1:${strictGrpc.inboundPort}: the peer refused this sidecar's certificate: untrusted-certificate (ERR_SKEIN_TLS_HANDSHAKE)`);
    expect(await counts('catalog')).toEqual({ refused: before.refused + 3, connectFailureRetries: before.connectFailureRetries + 2, resetRetries: before.resetRetries });
    // The refusing sidecar counted and logged its side, with the detail the caller is not told, and called no app.
    expect(metric(await scrape(strictGrpc), 'skein_tls_handshake_failures_total', { reason: 'untrusted-certificate' })).toBe(refusingBefore + 3);
    expect(strictGrpc.output()).toMatch(/"reason":"untrusted-certificate".*"msg":"inbound connection refused: client certificate refused: [A-Z_]+"/);
    expect(strictApp.requests.filter((req) => req.url === '/test.Echo/Echo')).toEqual([]);
  });
});
