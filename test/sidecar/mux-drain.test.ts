/**
 * Draining over the sidecar mux: a called sidecar that gets SIGTERM tells its callers GOAWAY
 * on their shared mTLS connection; the request in flight on it finishes, a request made while
 * it drains goes out on a new connection and is answered, and the sidecar exits 0.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { echoHandler, freePorts, makeCa, makeLeaf, Processes, startUpstream, tempDir, waitUntil, writeIdentity, writeTempConfig, type TestUpstream } from '../support/index.js';
import { get, testAgent } from './http.js';

describe('draining over the sidecar mux', () => {
  const procs = new Processes();
  const agent = testAgent();
  let app: TestUpstream | undefined;

  afterAll(async () => {
    await agent.close();
    await procs.killAll();
    await app?.close();
  });

  it('finishes the stream in flight, answers a request sent while draining, then exits 0', async () => {
    let arrived = false;
    app = await startUpstream((req, res) => {
      if (req.url === '/slow') {
        arrived = true;
        setTimeout(() => echoHandler('slow')(req, res), 1500);
        return;
      }
      echoHandler('catalog')(req, res);
    });
    const ca = makeCa();
    const dir = tempDir();
    const [catalogInbound] = (await freePorts(1)) as [number];
    const config = writeTempConfig({ services: { catalog: { retries: { attempts: 0 }, endpoints: [{ address: '127.0.0.1', port: catalogInbound }] } } }, dir);
    const catalog = await procs.sidecar({ service: 'catalog', appPort: app.port, config, inboundPort: catalogInbound, drainTimeout: '10s', identity: writeIdentity(dir, 'catalog', makeLeaf(ca, 'catalog')) });
    const web = await procs.sidecar({ service: 'web', appPort: app.port, config, identity: writeIdentity(dir, 'web', makeLeaf(ca, 'web')) });

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
});
