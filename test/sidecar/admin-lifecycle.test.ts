/**
 * Admin endpoints, readiness, config reload, drain and SIGTERM, on real sidecar processes.
 */
import { createServer, type Server } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import type { SnapshotInput } from '../../common/config/schema.js';
import { echoHandler, freePort, Processes, startScriptedConsulAgent, startUpstream, tempDir, waitUntil, writeConfigFile, type TestUpstream } from '../support/index.js';
import { join } from 'node:path';
import { endingOf, get, testAgent } from './http.js';

describe('admin endpoints and lifecycle', () => {
  const procs = new Processes();
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    await procs.killAll();
    for (const c of cleanups.splice(0)) await c();
  });

  const upstream = async (name: string, handler = echoHandler(name)): Promise<TestUpstream> => {
    const u = await startUpstream(handler);
    cleanups.push(() => u.close());
    return u;
  };

  /** A sidecar (with `drainTimeout`) whose app answers a request `answerAfterMs` late, and one request (`slow`) the app has received. */
  const slowRequestInFlight = async (answerAfterMs: number, drainTimeout: string) => {
    const agent = testAgent();
    cleanups.push(() => agent.close());
    let arrived = false;
    const app = await upstream('app', (req, res) => {
      if (req.url === '/health') return echoHandler('app')(req, res);
      arrived = true;
      setTimeout(() => echoHandler('slow-app')(req, res), answerAfterMs);
    });
    const config = writeConfigFile(join(tempDir(), 'c.json'), {});
    const sc = await procs.sidecar({ service: 'app', appPort: app.port, config, drainTimeout });
    const slow = get(agent, `http://127.0.0.1:${sc.inboundPort}/slow`);
    await waitUntil(() => arrived, { what: 'the slow request to reach the app' });
    return { agent, sc, slow };
  };

  it('is not ready (and sends no traffic to the app) until the app is healthy; then serves /config, /clusters, /metrics', async () => {
    const agent = testAgent();
    cleanups.push(() => agent.close());
    const appPort = await freePort();
    const peer = await upstream('peer');
    const config = writeConfigFile(join(tempDir(), 'c.json'), { version: 'a1', services: { peer: { endpoints: [{ address: '127.0.0.1', port: peer.port, labels: { version: 'v1' } }] } } });
    const sc = await procs.sidecar({ service: 'app', appPort, config, waitFor: '/live' });
    const notReady = await get(agent, `${sc.adminUrl}/ready`);
    expect(notReady.status).toBe(503);
    expect(notReady.text).toMatch(/app.*not healthy/);
    const early = await get(agent, `http://127.0.0.1:${sc.inboundPort}/x`);
    expect(early.status).toBe(503);
    expect(early.headers['x-skein-reason']).toBe('no-healthy-endpoints');

    const app: Server = createServer(echoHandler('app'));
    await new Promise<void>((resolve) => app.listen(appPort, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((r) => app.close(r)));
    await waitUntil(async () => (await get(agent, `${sc.adminUrl}/ready`)).status === 200, { what: '/ready 200' });
    expect((await get(agent, `http://127.0.0.1:${sc.inboundPort}/x`)).status).toBe(200);

    const cfg = (await get(agent, `${sc.adminUrl}/config`)).json<{ version: string; snapshot: SnapshotInput }>();
    expect(cfg.version).toBe('a1');
    expect(Object.keys(cfg.snapshot.services!)).toEqual(['peer']);
    expect((await get(agent, `${sc.outboundUrl}/`, { host: 'peer' })).status).toBe(200);
    const clusters = (await get(agent, `${sc.adminUrl}/clusters`)).json<Record<string, { endpoints: { port: number; health: string }[]; subsets: Record<string, { breaker: { state: string } }> }>>();
    expect(clusters.peer!.endpoints).toMatchObject([{ port: peer.port, health: 'healthy' }]);
    expect(clusters.peer!.subsets['*']!.breaker.state).toBe('closed');
    const metrics = (await get(agent, `${sc.adminUrl}/metrics`)).text;
    expect(metrics).toMatch(/skein_config_updates_total\{result="ack"\} 1/);
    expect(metrics).toMatch(/skein_requests_total\{direction="outbound",source="app",destination="peer"/);
    expect(metrics).toMatch(/process_cpu_seconds_total/);
    // No identity, no certificate to expire: a 0 would read as "expired at the epoch".
    expect(metrics).not.toMatch(/^skein_cert_expiry_timestamp_seconds /m);
    expect((await get(agent, `${sc.adminUrl}/nope`)).status).toBe(404);
  });

  it('reloads a changed config file, keeps the old one when the new one is invalid, and reloads on SIGHUP', async () => {
    const agent = testAgent();
    cleanups.push(() => agent.close());
    const [a, b] = await Promise.all([upstream('a'), upstream('b')]);
    const path = join(tempDir(), 'skein.yaml');
    const snapshot = (version: string, target: 'a' | 'b'): SnapshotInput => ({
      version,
      services: { shop: { endpoints: [{ address: '127.0.0.1', port: a.port, labels: { version: 'a' } }, { address: '127.0.0.1', port: b.port, labels: { version: 'b' } }] } },
      routes: { shop: [{ match: { pathPrefix: '/' }, split: { [target]: 100 } }] },
    });
    writeConfigFile(path, snapshot('1', 'a'));
    const sc = await procs.sidecar({ service: 'client', appPort: a.port, config: path });
    const who = async () => String((await get(agent, `${sc.outboundUrl}/`, { host: 'shop' })).headers['x-upstream']);
    expect(await who()).toBe('a');

    writeConfigFile(path, snapshot('2', 'b'));
    await waitUntil(async () => (await get(agent, `${sc.adminUrl}/config`)).json<{ version: string }>().version === '2', { what: 'version 2 applied' });
    expect(await who()).toBe('b');

    writeConfigFile(path, 'version: "3"\nroutes:\n  shop:\n    - split: { a: 60, b: 30 }\n');
    await waitUntil(() => /routes\.shop\[0\]\.split: weights must sum to 100/.test(sc.output()), { what: 'the rejection in the log' });
    expect((await get(agent, `${sc.adminUrl}/config`)).json<{ version: string }>().version).toBe('2');
    expect(await who()).toBe('b');
    expect((await get(agent, `${sc.adminUrl}/metrics`)).text).toMatch(/skein_config_updates_total\{result="nack"\} [1-9]/);

    writeConfigFile(path, snapshot('4', 'a'));
    await waitUntil(async () => (await get(agent, `${sc.adminUrl}/config`)).json<{ version: string }>().version === '4', { what: 'version 4 applied' });
    sc.kill('SIGHUP');
    await waitUntil(() => /SIGHUP: reloading config/.test(sc.output()), { what: 'the SIGHUP reload' });
    expect(await who()).toBe('a');
  });

  it('POST /drain makes /ready 503 and closes connections after each response', async () => {
    const agent = testAgent();
    cleanups.push(() => agent.close());
    const app = await upstream('app');
    const config = writeConfigFile(join(tempDir(), 'c.json'), {});
    const sc = await procs.sidecar({ service: 'app', appPort: app.port, config });
    const drain = await get(agent, `${sc.adminUrl}/drain`, {}, 'POST');
    expect(drain.status).toBe(202);
    const ready = await get(agent, `${sc.adminUrl}/ready`);
    expect(ready.status).toBe(503);
    expect(ready.text).toContain('draining');
    const res = await get(agent, `http://127.0.0.1:${sc.inboundPort}/`);
    expect(res.status).toBe(200);
    expect(res.headers.connection).toBe('close');
  });

  it('on SIGTERM finishes the in-flight request, then exits 0', async () => {
    const { agent, sc, slow } = await slowRequestInFlight(1500, '10s');
    sc.kill('SIGTERM');
    await waitUntil(async () => (await get(agent, `${sc.adminUrl}/ready`)).status === 503, { what: '/ready 503 while draining' });
    const res = await slow;
    expect(res.status).toBe(200);
    expect(res.json()).toMatchObject({ name: 'slow-app' });
    const exit = await sc.exited;
    expect(exit.code, sc.output()).toBe(0);
  });

  it('on a second SIGTERM while draining says it is already draining and still finishes the in-flight request', async () => {
    const { agent, sc, slow } = await slowRequestInFlight(1500, '10s');
    sc.kill('SIGTERM');
    await waitUntil(async () => (await get(agent, `${sc.adminUrl}/ready`)).status === 503, { what: '/ready 503 while draining' });
    sc.kill('SIGTERM');
    await waitUntil(() => sc.output().includes('SIGTERM: already draining (1 in flight)'), { what: 'the repeated SIGTERM to be logged' });
    const res = await slow;
    expect(res.status).toBe(200);
    expect((await sc.exited).code, sc.output()).toBe(0);
  });

  it('on SIGINT while draining exits 1 at once, saying how many requests it cuts off', async () => {
    const { agent, sc, slow } = await slowRequestInFlight(10_000, '30s');
    // The request is cut off with the process.
    const cut = slow.then(() => 'answered', () => 'cut off');
    sc.kill('SIGTERM');
    await waitUntil(async () => (await get(agent, `${sc.adminUrl}/ready`)).status === 503, { what: '/ready 503 while draining' });
    const signalled = Date.now();
    sc.kill('SIGINT');
    expect((await sc.exited).code, sc.output()).toBe(1);
    expect(Date.now() - signalled).toBeLessThan(2000);
    expect(sc.output()).toContain('SIGINT while draining: exiting now, 1 in flight cut off');
    expect(await cut).toBe('cut off');
  });

  it('at the drain timeout answers a request whose answer has not begun 503 retries-exhausted, Connection: close, rather than an empty reply', async () => {
    const { sc, slow } = await slowRequestInFlight(30_000, '1s');
    sc.kill('SIGTERM');
    const res = await slow;
    expect(res.status, sc.output()).toBe(503);
    expect(res.headers['x-skein-reason']).toBe('retries-exhausted');
    expect(res.headers.connection).toBe('close');
    expect(res.text).toBe('sidecar shutting down: its drain timeout (1s) ran out before app answered\n');
    expect((await sc.exited).code, sc.output()).toBe(0);
    expect(sc.output()).toMatch(/"inFlight":1,"answered":1,"msg":"drain timeout reached with requests in flight/);
  });

  it('at the drain timeout resets the connection of an HTTP/1.0 caller whose close-delimited answer is still streaming, as a plain close would say it was whole', async () => {
    const app = await upstream('app', (req, res) => {
      if (req.url === '/health') return echoHandler('app')(req, res);
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first\n');
      const more = setInterval(() => res.write('more\n'), 100);
      res.on('close', () => clearInterval(more));
    });
    const config = writeConfigFile(join(tempDir(), 'c.json'), {});
    const sc = await procs.sidecar({ service: 'app', appPort: app.port, config, drainTimeout: '1s' });
    let started: () => void = () => {};
    const answerStarted = new Promise<void>((resolve) => (started = resolve));
    const ending = endingOf(sc.inboundPort, 'GET /stream HTTP/1.0\r\nHost: app\r\n\r\n', (data) => data.includes('first') && started());
    await answerStarted;
    sc.kill('SIGTERM');
    const cut = await ending;
    expect(cut.data).toMatch(/^HTTP\/1.1 200 [^]*connection: close\r\n/);
    expect(cut.data).not.toMatch(/content-length|transfer-encoding/i);
    expect(cut.reset, JSON.stringify(cut)).toBe(true);
    expect((await sc.exited).code, sc.output()).toBe(0);
  });

  it('counts --drain-timeout from the signal even when POST /drain came first (one drain, its clock restarted)', async () => {
    const { agent, sc, slow } = await slowRequestInFlight(3000, '2s');
    expect((await get(agent, `${sc.adminUrl}/drain`, {}, 'POST')).status).toBe(202);
    await new Promise((r) => setTimeout(r, 1500));
    // 1.5 s into the /drain's 2 s: the signal gives the request 2 s more, and it needs 1.5.
    const signalled = Date.now();
    sc.kill('SIGTERM');
    const res = await slow;
    expect(res.status, sc.output()).toBe(200);
    expect(res.json()).toMatchObject({ name: 'slow-app' });
    const exit = await sc.exited;
    expect(exit.code, sc.output()).toBe(0);
    expect(Date.now() - signalled).toBeLessThan(2000 + 1000);
  });

  it('on SIGTERM turns /ready 503 first, while it is still leaving Consul (a scripted agent holds the deregistration)', async () => {
    const agent = testAgent();
    cleanups.push(() => agent.close());
    const app = await upstream('app');
    const consul = await startScriptedConsulAgent({ holdPut: (path) => path.startsWith('/v1/agent/service/maintenance/') });
    cleanups.push(() => consul.close());
    const puts = (): string[] => consul.puts.map((p) => p.path);
    const config = writeConfigFile(join(tempDir(), 'c.json'), {});
    const sc = await procs.sidecar({ service: 'app', appPort: app.port, config, extraArgs: ['--consul', consul.url] });
    await waitUntil(() => puts().includes('/v1/agent/service/register'), { what: 'the registration' });
    expect((await get(agent, `${sc.adminUrl}/ready`)).status).toBe(200);
    sc.kill('SIGTERM');
    await waitUntil(() => puts().some((p) => p.startsWith('/v1/agent/service/maintenance/')), { what: 'the deregistration to start' });
    // The agent has not answered: the sidecar is still leaving Consul, and already not ready.
    const ready = await get(agent, `${sc.adminUrl}/ready`);
    expect(ready.status, sc.output()).toBe(503);
    expect(ready.text).toContain('draining');
    const exit = await sc.exited;
    expect(exit.code, sc.output()).toBe(0);
  });
});
