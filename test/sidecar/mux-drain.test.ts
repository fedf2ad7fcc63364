/**
 * Draining over the sidecar mux: a called sidecar that gets SIGTERM tells its callers GOAWAY
 * on their shared mTLS connection; the request in flight on it finishes, a request made while
 * it drains goes out on a new connection and is answered, and the sidecar exits 0. A request
 * its app still holds at the drain timeout is answered by that sidecar itself, not reset.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { echoHandler, freePorts, makeCa, makeLeaf, Processes, startUpstream, tempDir, waitUntil, writeIdentity, writeTempConfig, type TestUpstream } from '../support/index.js';
import { get, testAgent } from './http.js';

describe('draining over the sidecar mux', () => {
  const procs = new Processes();
  const agent = testAgent();
  const apps: TestUpstream[] = [];

  afterAll(async () => {
    await agent.close();
    await procs.killAll();
    for (const app of apps) await app.close();
  });

  /** catalog (draining within `drainTimeout`) behind its mTLS sidecar, called through web's outbound listener; `app` serves both. */
  const meshPair = async (app: TestUpstream, drainTimeout: string) => {
    apps.push(app);
    const ca = makeCa();
    const dir = tempDir();
    const [catalogInbound] = (await freePorts(1)) as [number];
    const config = writeTempConfig({ services: { catalog: { retries: { attempts: 0 }, endpoints: [{ address: '127.0.0.1', port: catalogInbound }] } } }, dir);
    const catalog = await procs.sidecar({ service: 'catalog', appPort: app.port, config, inboundPort: catalogInbound, drainTimeout, identity: writeIdentity(dir, 'catalog', makeLeaf(ca, 'catalog')) });
    const web = await procs.sidecar({ service: 'web', appPort: app.port, config, identity: writeIdentity(dir, 'web', makeLeaf(ca, 'web')) });
    return { catalog, web };
  };

  it('finishes the stream in flight, answers a request sent while draining, then exits 0', async () => {
    let arrived = false;
    const app = await startUpstream((req, res) => {
      if (req.url === '/slow') {
        arrived = true;
        setTimeout(() => echoHandler('slow')(req, res), 1500);
        return;
      }
      echoHandler('catalog')(req, res);
    });
    const { catalog, web } = await meshPair(app, '10s');

    expect((await get(agent, `${web.outboundUrl}/warm`, { host: 'catalog' })).status).toBe(200);
    const slow = get(agent, `${web.outboundUrl}/slow`, { host: 'catalog' });
    await waitUntil(() => arrived, { what: 'the slow request to reach the app' });
    catalog.kill('SIGTERM');
    await waitUntil(async () => (await get(agent, `${catalog.adminUrl}/ready`)).status === 503, { what: 'catalog draining' });

    const during = await get(agent, `${web.outboundUrl}/during-drain`, { host: 'catalog' });
    expect(during.status, `${during.text}\n${web.output()}`).toBe(200);
    expect(during.json()).toMatchObject({ name: 'catalog', path: '/during-drain' });

    const res = await slow;
    expect(res.status, `${res.text}\n${JSON.stringify(res.headers)}\n${web.output()}\n${catalog.output()}`).toBe(200);
    expect(res.json()).toMatchObject({ name: 'slow' });
    expect((await catalog.exited).code, catalog.output()).toBe(0);
  });

  it('at the drain timeout answers a stream whose app has not answered 503 retries-exhausted from the draining sidecar itself, not a reset', async () => {
    let arrived = false;
    // /hold is never answered.
    const app = await startUpstream((req, res) => {
      if (req.url === '/hold') arrived = true;
      else echoHandler('catalog')(req, res);
    });
    const { catalog, web } = await meshPair(app, '1s');
    const held = get(agent, `${web.outboundUrl}/hold`, { host: 'catalog' });
    await waitUntil(() => arrived, { what: 'the held request to reach the app' });
    catalog.kill('SIGTERM');
    const res = await held;
    expect(res.status, `${res.text}\n${web.output()}\n${catalog.output()}`).toBe(503);
    expect(res.headers['x-skein-reason']).toBe('retries-exhausted');
    // catalog's own answer (a reset would have web say the peer broke off its answer).
    expect(res.text).toBe('sidecar shutting down: its drain timeout (1s) ran out before catalog answered\n');
    expect((await catalog.exited).code, catalog.output()).toBe(0);
  });
});
