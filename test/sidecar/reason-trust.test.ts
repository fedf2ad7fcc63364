/**
 * Which `x-skein-reason` a sidecar believes when it decides whether a POST may be replayed.
 * SPEC §4: non-idempotent requests are retried only when they never reached the upstream. A
 * peer sidecar's own `503 upstream-connect-failure` says its app never got the request; the
 * same header from an app (a gateway relaying a downstream sidecar's answer, say) says nothing
 * of the kind. Only the peer sidecar's own answer, marked in the mux's response frame where no
 * app header can reach, is believed; a plain endpoint's never is. The app's header still
 * reaches the client, for diagnostics.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { echoHandler, freePorts, makeCa, makeLeaf, Processes, startUpstream, tempDir, writeIdentity, writeTempConfig, type Handler, type SpawnedSidecar, type TestUpstream } from '../support/index.js';
import { metric, scrape, send } from './resilience-fixture.js';

/** An app relaying a downstream sidecar's refusal, headers and all, for every call but its health check. */
const relaysRefusal: Handler = (req, res) => {
  if (req.url === '/health') return echoHandler('catalog')(req, res);
  req.resume();
  req.on('end', () => {
    res.writeHead(503, { 'content-type': 'text/plain', 'x-skein-reason': 'upstream-connect-failure' });
    res.end('could not connect to payments\n');
  });
};

const retries = { attempts: 2, backoff: { base: '1ms', max: '2ms' } };

describe('x-skein-reason from an upstream', () => {
  const procs = new Processes();
  const upstreams: TestUpstream[] = [];
  const sidecars: SpawnedSidecar[] = [];

  const upstream = async (handler: Handler): Promise<TestUpstream> => {
    const u = await startUpstream(handler);
    upstreams.push(u);
    return u;
  };

  afterEach(async (ctx) => {
    if (ctx.task.result?.state === 'fail') for (const s of sidecars) console.log(`--- ${s.name} ---\n${s.output()}`);
    sidecars.length = 0;
    await procs.killAll();
  });

  afterAll(async () => {
    await Promise.all(upstreams.map((u) => u.close()));
  });

  it('is not believed from a plain endpoint: a POST it refused with upstream-connect-failure is not replayed', async () => {
    const app = await upstream(relaysRefusal);
    const webApp = await upstream(echoHandler('web'));
    const config = writeTempConfig({ version: '1', services: { catalog: { retries, endpoints: [{ address: '127.0.0.1', port: app.port, labels: { version: 'v1' } }] } } });
    const web = await procs.sidecar({ service: 'web', appPort: webApp.port, config });
    sidecars.push(web);

    const post = await send(`${web.outboundUrl}/pay`, { method: 'POST', headers: { host: 'catalog' }, body: 'order=1' });
    expect(post.status).toBe(503);
    expect(post.headers['x-skein-reason']).toBe('upstream-connect-failure'); // the app's, passed on
    expect(post.body).toBe('could not connect to payments\n');
    expect(app.requests.filter((r) => r.url === '/pay').map((r) => r.headers['x-skein-attempt'])).toEqual(['1']);
    // A GET is still retried on the 503 (gateway-error): the policy itself is on.
    await send(`${web.outboundUrl}/list`, { headers: { host: 'catalog' } });
    expect(app.requests.filter((r) => r.url === '/list')).toHaveLength(3);
  });

  it('is never a "not delivered" reason after a try that reached the app: a retry the opened breaker refuses is retries-exhausted', async () => {
    const app = await upstream((req, res) => {
      if (req.url === '/health') return echoHandler('catalog')(req, res);
      req.resume();
      res.writeHead(503, { 'content-type': 'text/plain' }).end('busy\n');
    });
    const webApp = await upstream(echoHandler('web'));
    const catalog = {
      retries: { attempts: 1, on: ['gateway-error' as const], backoff: { base: '1ms', max: '2ms' } },
      // One failure opens it, so the retry of the first request is refused.
      circuitBreaker: { errorThresholdPercentage: 1, volumeThreshold: 1, resetTimeout: '60s' },
      endpoints: [{ address: '127.0.0.1', port: app.port, labels: { version: 'v1' } }],
    };
    const web = await procs.sidecar({ service: 'web', appPort: webApp.port, config: writeTempConfig({ version: '1', services: { catalog } }) });
    sidecars.push(web);

    const first = await send(`${web.outboundUrl}/charge`, { headers: { host: 'catalog' } });
    expect(first.status).toBe(503);
    expect(first.headers['x-skein-reason']).toBe('retries-exhausted');
    expect(first.body).toMatch(/circuit open for catalog.*after a try that may have reached it/);
    expect(app.requests.filter((r) => r.url === '/charge')).toHaveLength(1);
    // A request refused before any try went out says so.
    const second = await send(`${web.outboundUrl}/charge`, { headers: { host: 'catalog' } });
    expect(second.headers['x-skein-reason']).toBe('circuit-open');
    expect(app.requests.filter((r) => r.url === '/charge')).toHaveLength(1);
  });

  describe('through an mTLS peer sidecar', () => {
    it('is not believed when the peer\'s app wrote it: the POST is not replayed, and the client still sees the header', async () => {
      const app = await upstream(relaysRefusal);
      const webApp = await upstream(echoHandler('web'));
      const ca = makeCa();
      const dir = tempDir();
      const [inbound] = (await freePorts(1)) as [number];
      const config = writeTempConfig({ version: '1', services: { catalog: { retries, endpoints: [{ address: '127.0.0.1', port: inbound, labels: { version: 'v1' } }] } } }, dir);
      sidecars.push(await procs.sidecar({ service: 'catalog', appPort: app.port, config, inboundPort: inbound, identity: writeIdentity(dir, 'catalog', makeLeaf(ca, 'catalog')) }));
      const web = await procs.sidecar({ service: 'web', appPort: webApp.port, config, identity: writeIdentity(dir, 'web', makeLeaf(ca, 'web')) });
      sidecars.push(web);

      const post = await send(`${web.outboundUrl}/pay`, { method: 'POST', headers: { host: 'catalog' }, body: 'order=1' });
      expect(post.status).toBe(503);
      expect(post.headers['x-skein-reason']).toBe('upstream-connect-failure');
      expect(post.body).toBe('could not connect to payments\n');
      expect(app.requests.filter((r) => r.url === '/pay').map((r) => r.headers['x-skein-attempt'])).toEqual(['1']);
      expect(metric(await scrape(web), 'skein_retries_total', { destination: 'catalog' })).toBe(0);
    });

    it('is believed when the peer sidecar itself could not reach its app: the POST goes to another endpoint', async () => {
      const downApp = await upstream(echoHandler('catalog-down'));
      const upApp = await upstream(echoHandler('catalog-up'));
      const webApp = await upstream(echoHandler('web'));
      const ca = makeCa();
      const dir = tempDir();
      const [downInbound, upInbound] = (await freePorts(2)) as [number, number];
      const endpoints = [downInbound, upInbound].map((port) => ({ address: '127.0.0.1', port, labels: { version: 'v1' } }));
      const config = writeTempConfig({ version: '1', services: { catalog: { lb: 'round-robin', retries, endpoints } } }, dir);
      const leaf = makeLeaf(ca, 'catalog');
      sidecars.push(await procs.sidecar({ service: 'catalog', appPort: downApp.port, config, inboundPort: downInbound, identity: writeIdentity(dir, 'catalog-down', leaf) }));
      sidecars.push(await procs.sidecar({ service: 'catalog', appPort: upApp.port, config, inboundPort: upInbound, identity: writeIdentity(dir, 'catalog-up', leaf) }));
      const web = await procs.sidecar({ service: 'web', appPort: webApp.port, config, identity: writeIdentity(dir, 'web', makeLeaf(ca, 'web')) });
      sidecars.push(web);
      // Its sidecar has seen it healthy; now its port refuses connections.
      await downApp.close();
      upstreams.splice(upstreams.indexOf(downApp), 1);

      for (let i = 0; i < 4; i++) {
        const post = await send(`${web.outboundUrl}/pay/${i}`, { method: 'POST', headers: { host: 'catalog' }, body: 'order=1' });
        expect(post.status, post.body).toBe(200);
        expect(JSON.parse(post.body)).toMatchObject({ name: 'catalog-up' });
      }
      expect(upApp.requests.filter((r) => r.method === 'POST')).toHaveLength(4);
      expect(metric(await scrape(web), 'skein_retries_total', { destination: 'catalog', reason: 'gateway-error' })).toBeGreaterThan(0);
    });
  });
});
