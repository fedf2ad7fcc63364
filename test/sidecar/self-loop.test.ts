/**
 * An endpoint that is the sidecar's own outbound listener (the main one or an `--upstream`
 * one) would send each request back into the sidecar, over and over. The sidecar refuses
 * such an endpoint as a connect failure naming the loop: one request is one request, a retry
 * goes to the service's other endpoint, and the error is logged.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SnapshotInput } from '../../common/config/schema.js';
import { echoHandler, freePort, Processes, startUpstream, waitUntil, writeConfigFile, writeTempConfig, type SpawnedSidecar, type TestUpstream } from '../support/index.js';
import { get, testAgent } from './http.js';
import { metric, scrape } from './resilience-fixture.js';

describe('an endpoint at the sidecar’s own outbound listener', () => {
  const procs = new Processes();
  const agent = testAgent();
  let app: TestUpstream;
  let good: TestUpstream;
  let sidecar: SpawnedSidecar;
  let config: string;
  let upstreamPort: number;

  const snapshot = (version: string, loopPort: number): SnapshotInput => ({
    version,
    services: {
      // Only the looping endpoint: the caller gets a 503 that says why.
      loopy: { retries: { attempts: 2, on: ['connect-failure'] }, endpoints: [{ address: '127.0.0.1', port: loopPort, labels: {} }] },
      // The looping endpoint and a good one: round robin sends first tries to both, and a retry finds the good one.
      mixed: {
        lb: 'round-robin',
        retries: { attempts: 2, on: ['connect-failure'] },
        endpoints: [
          { address: '127.0.0.1', port: loopPort, labels: {} },
          { address: '127.0.0.1', port: good.port, labels: {} },
        ],
      },
    },
  });

  beforeAll(async () => {
    app = await startUpstream(echoHandler('app'));
    good = await startUpstream(echoHandler('good'));
    upstreamPort = await freePort();
    config = writeTempConfig(snapshot('v1', upstreamPort));
    sidecar = await procs.sidecar({ service: 'web', appPort: app.port, config, upstreams: [{ service: 'loopy', port: upstreamPort }] });
  });

  afterAll(async () => {
    await agent.close();
    await procs.killAll();
    await Promise.all([app.close(), good.close()]);
  });

  async function outboundCount(destination: string): Promise<number> {
    return metric(await scrape(sidecar), 'skein_requests_total', { direction: 'outbound', destination });
  }

  it('an --upstream listener as an endpoint: one request is refused once, naming the loop', async () => {
    const res = await get(agent, `${sidecar.outboundUrl}/x`, { host: 'loopy' });
    expect(res.status).toBe(503);
    expect(res.headers['x-skein-reason']).toBe('upstream-connect-failure');
    expect(res.text).toMatch(/own outbound listener/);
    // Without the guard this one request came back in through the listener hundreds of times.
    expect(await outboundCount('loopy')).toBe(1);
    expect(sidecar.output()).toMatch(/endpoint 127\.0\.0\.1:\d+ of loopy is this sidecar's own outbound listener/);
  });

  it('a retry moves from the looping endpoint to the service’s good one', async () => {
    for (let i = 0; i < 6; i++) {
      const res = await get(agent, `${sidecar.outboundUrl}/m${i}`, { host: 'mixed' });
      expect(res.status, res.text).toBe(200);
      expect(res.headers['x-upstream']).toBe('good');
    }
    expect(await outboundCount('mixed')).toBe(6);
  });

  it('the main outbound listener as an endpoint, after a reload, is refused the same way', async () => {
    writeConfigFile(config, snapshot('v2', sidecar.outboundPort));
    await waitUntil(async () => (await get(agent, `${sidecar.adminUrl}/config`)).json<{ version: string }>().version === 'v2', { what: 'config v2 applied' });
    const before = await outboundCount('loopy');
    const res = await get(agent, `${sidecar.outboundUrl}/y`, { host: 'loopy' });
    expect(res.status).toBe(503);
    expect(res.text).toMatch(new RegExp(`endpoint 127\\.0\\.0\\.1:${sidecar.outboundPort} of loopy is this sidecar's own outbound listener`));
    expect((await outboundCount('loopy')) - before).toBe(1);
  });
});

describe('an --upstream NAME:0 listener', () => {
  const procs = new Processes();
  const agent = testAgent();
  let app: TestUpstream;

  beforeAll(async () => {
    app = await startUpstream(echoHandler('app'));
  });

  afterAll(async () => {
    await agent.close();
    await procs.killAll();
    await app.close();
  });

  it('binds a free port, which the `sidecar listening` line names, and counts it as the sidecar’s own', async () => {
    const snapshot = (version: string, loopPort: number): SnapshotInput => ({
      version,
      services: {
        catalog: { endpoints: [{ address: '127.0.0.1', port: app.port, labels: {} }] },
        loopy: { retries: { attempts: 2, on: ['connect-failure'] }, endpoints: [{ address: '127.0.0.1', port: loopPort, labels: {} }] },
      },
    });
    // Port 1 is no listener of the sidecar's: loopy starts as a plain refused endpoint.
    const config = writeTempConfig(snapshot('v1', 1));
    const sidecar = await procs.sidecar({ service: 'web', appPort: app.port, config, upstreams: [{ service: 'catalog', port: 0 }] });
    const line = sidecar.output().split('\n').find((l) => l.includes('sidecar listening'));
    const upstreams = (JSON.parse(line!) as { upstreams: { service: string; port: number }[] }).upstreams;
    expect(upstreams).toHaveLength(1);
    const port = upstreams[0]!.port;
    expect(upstreams[0]!.service).toBe('catalog');
    expect(port).toBeGreaterThan(0);
    const res = await get(agent, `http://127.0.0.1:${port}/items`, {});
    expect(res.status, res.text).toBe(200);
    expect(res.headers['x-upstream']).toBe('app');
    // An endpoint at the bound port loops back into the sidecar, as one at a port given outright does.
    writeConfigFile(config, snapshot('v2', port));
    await waitUntil(async () => (await get(agent, `${sidecar.adminUrl}/config`)).json<{ version: string }>().version === 'v2', { what: 'config v2 applied' });
    const looped = await get(agent, `${sidecar.outboundUrl}/y`, { host: 'loopy' });
    expect(looped.status).toBe(503);
    expect(looped.text).toMatch(new RegExp(`endpoint 127\\.0\\.0\\.1:${port} of loopy is this sidecar's own outbound listener`));
  });
});
