/** Route fault injection end to end: delay and abort, decided by the sidecar before any upstream call. */
import { connect as h2connect, type IncomingHttpHeaders as H2Headers } from 'node:http2';
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { RouteRuleInput } from '../../common/config/schema.js';
import { echoHandler, Processes, startUpstream, type TestUpstream } from '../support/index.js';
import { endpointOf, metric, scrape, startOutbound } from './resilience-fixture.js';

const procs = new Processes();
const upstreams: TestUpstream[] = [];

afterEach(async () => {
  await procs.killAll();
  await Promise.all(upstreams.splice(0).map((u) => u.close()));
});

async function withFault(fault: RouteRuleInput['fault'], policy: Record<string, unknown> = {}) {
  const app = await startUpstream(echoHandler('catalog'));
  upstreams.push(app);
  const web = await startOutbound(procs, {
    version: '1',
    services: { catalog: { ...policy, endpoints: [endpointOf(app)] } },
    routes: {
      catalog: [
        { match: { pathPrefix: '/faulty' }, fault },
        { match: { pathPrefix: '/' } },
      ],
    },
  });
  return { app, web };
}

describe('fault injection', () => {
  it('aborts with the configured status and x-skein-reason: fault-injected, never reaching the upstream', async () => {
    const { app, web } = await withFault({ abort: { percent: 100, status: 418 } });
    const r = await web.call('/faulty/x');
    expect(r.status).toBe(418);
    expect(r.headers['x-skein-reason']).toBe('fault-injected');
    expect(app.requests.length).toBe(0);
    // Other rules are untouched.
    expect((await web.call('/fine')).status).toBe(200);
    expect(app.requests.length).toBe(1);
    expect(metric(await scrape(web.sidecar), 'skein_requests_total', { destination: 'catalog', code: '418' })).toBe(1);
  });

  it('aborts with a no-content status (204, 304) as a head alone: no Content-Length, which HTTP/1.1 forbids on a 204 and HTTP/2 clients refuse', async () => {
    const app = await startUpstream(echoHandler('catalog'));
    upstreams.push(app);
    const web = await startOutbound(procs, {
      version: '1',
      services: { catalog: { endpoints: [endpointOf(app)] } },
      routes: {
        catalog: [
          { match: { pathPrefix: '/nc204' }, fault: { abort: { percent: 100, status: 204 } } },
          { match: { pathPrefix: '/nc304' }, fault: { abort: { percent: 100, status: 304 } } },
          { match: { pathPrefix: '/' } },
        ],
      },
    });
    // HTTP/1.1, two requests pipelined on one connection: the second answer follows the first's head at once.
    const socket = connect({ host: '127.0.0.1', port: web.sidecar.outboundPort });
    let text = '';
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => (text += d));
    socket.write('GET /nc204 HTTP/1.1\r\nHost: catalog\r\n\r\nGET /nc304 HTTP/1.1\r\nHost: catalog\r\n\r\nGET /fine HTTP/1.1\r\nHost: catalog\r\nConnection: close\r\n\r\n');
    await new Promise((resolve) => socket.on('close', resolve));
    const heads = text.split('\r\n\r\n');
    expect(heads[0]).toMatch(/^HTTP\/1\.1 204 /);
    expect(heads[0]).toMatch(/x-skein-reason: fault-injected/);
    expect(heads[0]).not.toMatch(/content-length|transfer-encoding/i);
    expect(heads[1]).toMatch(/^HTTP\/1\.1 304 /);
    expect(heads[1]).not.toMatch(/content-length|transfer-encoding/i);
    expect(heads[2]).toMatch(/^HTTP\/1\.1 200 /);
    // HTTP/2 (h2c): nghttp2 resets a 204 that declares a non-zero length (PROTOCOL_ERROR).
    const session = h2connect(web.sidecar.outboundUrl);
    // Stream events say whether a request failed; a reset of the connection after the answers must not be an uncaught exception.
    session.on('error', () => {});
    try {
      for (const path of ['/nc204', '/nc304']) {
        const head = await new Promise<H2Headers>((resolve, reject) => {
          const stream = session.request({ ':path': path, ':authority': 'catalog' });
          let got: H2Headers | undefined;
          stream.on('response', (h) => (got = h));
          stream.on('error', reject);
          stream.on('close', () => (got ? resolve(got) : reject(new Error(`stream closed without an answer (code ${stream.rstCode})`))));
          stream.resume();
          stream.end();
        });
        expect(head[':status']).toBe(Number(path.slice(3)));
        expect(head['x-skein-reason']).toBe('fault-injected');
        expect(head['content-length']).toBeUndefined();
      }
    } finally {
      session.close();
    }
    expect(app.requests.length).toBe(1);
  });

  it('delays by the configured duration, then proceeds', async () => {
    const { app, web } = await withFault({ delay: { percent: 100, duration: '400ms' } });
    expect((await web.call('/fine')).status).toBe(200);
    const delayed = await web.call('/faulty/x');
    expect(delayed.status).toBe(200);
    expect(delayed.ms).toBeGreaterThanOrEqual(395);
    expect(app.requests.map((q) => q.url)).toEqual(['/fine', '/faulty/x']);
  });

  it('starts the route timeout after the delay, as Envoy does: a delay longer than the timeout blames no endpoint', async () => {
    const { app, web } = await withFault({ delay: { percent: 100, duration: '600ms' } }, {
      timeout: '500ms',
      retries: { attempts: 0 },
      circuitBreaker: { volumeThreshold: 2, resetTimeout: '30s' },
      outlierDetection: { consecutiveErrors: 2 },
    });
    for (let i = 0; i < 4; i++) {
      const r = await web.call(`/faulty/${i}`);
      expect(r.status, r.body).toBe(200);
      expect(r.ms).toBeGreaterThanOrEqual(595);
    }
    expect(app.requests).toHaveLength(4);
    const s = await scrape(web.sidecar);
    expect(metric(s, 'skein_circuit_state', { destination: 'catalog' })).toBe(0);
    expect(metric(s, 'skein_outlier_ejections_total', { destination: 'catalog' })).toBe(0);
    expect((await web.call('/fine')).status).toBe(200);
  });

  it('aborts about its percentage of requests', async () => {
    const { app, web } = await withFault({ abort: { percent: 50, status: 503 } });
    let aborted = 0;
    for (let i = 0; i < 100; i++) {
      const r = await web.call('/faulty/x');
      if (r.headers['x-skein-reason'] === 'fault-injected') aborted++;
      else expect(r.status).toBe(200);
    }
    // Binomial(100, 0.5): outside [25, 75] has probability ~1e-6.
    expect(aborted).toBeGreaterThanOrEqual(25);
    expect(aborted).toBeLessThanOrEqual(75);
    expect(app.requests.length).toBe(100 - aborted);
  });
});
