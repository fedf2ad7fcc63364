/**
 * A malformed chunked request body (SPEC §8) is the client's fault: it gets `400 bad-request`
 * while nothing of the answer was sent, the upstream's head held back included (the
 * connection is cut once something was), and counts
 * against no endpoint: through an mTLS pair (the mux) and to a plain endpoint, 25 of them in
 * a row leave the circuit closed and the endpoint's failure streak at 0.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { echoHandler, Processes, startUpstream, type SpawnedSidecar, type TestUpstream } from '../support/index.js';
import { startBodyTestSidecars } from './body-fixture.js';
import { get, rawExchange, testAgent } from './http.js';
import { metric, scrape } from './resilience-fixture.js';

const malformed = (host: string): string => `POST /echo HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n`;

interface Clusters {
  [service: string]: { endpoints: { port: number; outlier: { consecutiveErrors: number } | null }[]; subsets: Record<string, { breaker: { state: string } | null }> };
}

describe('malformed request bodies', () => {
  const procs = new Processes();
  const agent = testAgent();
  let app: TestUpstream;
  /** web with an identity: its calls to catalog go over the mux to catalog's sidecar. */
  let web: SpawnedSidecar;
  /** web without one: its calls to `direct` go to the app as plain HTTP/1.1. */
  let plainWeb: SpawnedSidecar;

  beforeAll(async () => {
    app = await startUpstream((req, res) => {
      if (req.url === '/stream') {
        // Answers at once and keeps the answer open, reading nothing.
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('started\n');
        return;
      }
      if (req.url === '/head-only') {
        // Answers a head at once and nothing else: the caller's sidecar holds it until a body byte.
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.flushHeaders();
        return;
      }
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => echoHandler(`got ${Buffer.concat(chunks).length} bytes`)(req, res));
    });
    ({ web, plainWeb } = await startBodyTestSidecars(procs, app, ['direct']));
  });

  afterAll(async () => {
    await agent.close();
    await procs.killAll();
    await app.close();
  });

  for (const [path, service, sidecar] of [
    ['through the mux to a peer sidecar', 'catalog', () => web],
    ['to a plain endpoint', 'direct', () => plainWeb],
  ] as const) {
    it(`answers 400 bad-request ${path}, and 25 of them open no circuit and eject nothing`, async () => {
      const sc = sidecar();
      for (let i = 0; i < 25; i++) {
        const answer = await rawExchange(sc.outboundPort, malformed(service));
        expect(answer, `request ${i}`).toMatch(/^HTTP\/1.1 400/);
        expect(answer).toMatch(/x-skein-reason: bad-request/i);
        expect(answer).toMatch(/connection: close/i);
        expect(answer).toContain('malformed request body');
      }
      const good = await get(agent, `${sc.outboundUrl}/echo`, { host: service }, 'POST', 'hello');
      expect(good.status, good.text).toBe(200);
      expect(good.json()).toMatchObject({ name: 'got 5 bytes' });

      const s = await scrape(sc);
      expect(metric(s, 'skein_requests_total', { direction: 'outbound', destination: service, code: '400' })).toBe(25);
      expect(metric(s, 'skein_requests_total', { direction: 'outbound', destination: service, code: '503' })).toBe(0);
      expect(metric(s, 'skein_requests_total', { direction: 'outbound', destination: service, code: '499' })).toBe(0);
      expect(metric(s, 'skein_circuit_state', { destination: service })).toBe(0);
      const clusters = (await get(agent, `${sc.adminUrl}/clusters`)).json<Clusters>();
      expect(clusters[service]!.endpoints[0]!.outlier?.consecutiveErrors).toBe(0);
      expect(Object.values(clusters[service]!.subsets).map((x) => x.breaker?.state)).toEqual(['closed']);
    });
  }

  for (const [path, service, sidecar] of [
    ['through the mux to a peer sidecar', 'catalog', () => web],
    ['to a plain endpoint', 'direct', () => plainWeb],
  ] as const) {
    it(`answers 400 when only the upstream's head had come (held, nothing sent to the client), ${path}, counted as 400`, async () => {
      const sc = sidecar();
      const before = await scrape(sc);
      const socket = connect({ host: '127.0.0.1', port: sc.outboundPort });
      let data = '';
      socket.setEncoding('latin1');
      socket.on('data', (d: string) => (data += d));
      socket.on('error', () => {});
      const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
      socket.write(`POST /head-only HTTP/1.1\r\nHost: ${service}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n`);
      const deadline = Date.now() + 10_000;
      while (app.requests.filter((r) => r.url === '/head-only').length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      // Time for the app's head to reach the sidecar, which holds it.
      await new Promise((r) => setTimeout(r, 300));
      expect(data).toBe('');
      socket.write('zz\r\n');
      await closed;
      expect(data).toMatch(/^HTTP\/1.1 400 /);
      expect(data).toMatch(/x-skein-reason: bad-request/i);
      expect(data).toContain('malformed request body');
      const s = await scrape(sc);
      const grew = (code: string): number => metric(s, 'skein_requests_total', { direction: 'outbound', destination: service, code }) - metric(before, 'skein_requests_total', { direction: 'outbound', destination: service, code });
      expect(grew('400')).toBe(1);
      expect(grew('200')).toBe(0);
    });
  }

  it('cuts the connection when the answer had begun, and leaves other connections alone', async () => {
    const socket = connect({ host: '127.0.0.1', port: web.outboundPort });
    let data = '';
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => (data += d));
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    socket.on('error', () => {});
    socket.write('POST /stream HTTP/1.1\r\nHost: catalog\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n');
    const deadline = Date.now() + 10_000;
    while (!data.includes('started') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(data).toMatch(/^HTTP\/1.1 200/);
    socket.write('zz\r\n');
    await closed;
    expect(data).not.toMatch(/400/);
    expect((await get(agent, `${web.outboundUrl}/echo`, { host: 'catalog' })).status).toBe(200);
  });
});
