/**
 * HTTP proxy mode through a CONNECT tunnel: undici's ProxyAgent and EnvHttpProxyAgent (so
 * Node's fetch with a proxy dispatcher) tunnel even http:// URLs through their HTTP_PROXY. The
 * plain outbound listener and an --upstream port take the tunnel and route the requests in it
 * by their own Host, as direct ones; the inbound listener still refuses CONNECT.
 */
import { once } from 'node:events';
import { connect as connectH2 } from 'node:http2';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { EnvHttpProxyAgent, ProxyAgent, fetch, request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { echoHandler, freePorts, Processes, startUpstream, tempDir, waitUntil, writeTempConfig, type SpawnedSidecar, type TestUpstream } from '../support/index.js';
import { rawExchange } from './http.js';
import { metric, scrape } from './resilience-fixture.js';

/** A TCP relay to `port` that records the first line each connection sends: one connection per tunnel undici opens. */
async function relay(port: number): Promise<{ port: number; firstLines: string[]; server: Server; sockets: Set<Socket> }> {
  const firstLines: string[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(port, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => client.destroy());
      s.on('close', () => sockets.delete(s));
    }
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    client.once('data', (d: Buffer) => firstLines.push(d.toString('latin1').split('\r\n')[0]!));
    client.pipe(upstream).pipe(client);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { port: (server.address() as AddressInfo).port, firstLines, server, sockets };
}

describe('CONNECT tunnels (HTTP proxy mode)', () => {
  const procs = new Processes();
  let app: TestUpstream;
  let sc: SpawnedSidecar;
  let upstreamPort: number;

  beforeAll(async () => {
    app = await startUpstream(echoHandler('catalog'));
    const config = writeTempConfig({ services: { catalog: { endpoints: [{ address: '127.0.0.1', port: app.port }] } } }, tempDir());
    [upstreamPort] = (await freePorts(1)) as [number];
    sc = await procs.sidecar({ service: 'web', appPort: app.port, config, upstreams: [{ service: 'catalog', port: upstreamPort }] });
  });

  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') console.log(sc?.output());
  });

  afterAll(async () => {
    await procs.killAll();
    await app.close();
  });

  it("serves undici's ProxyAgent: fetch of http://catalog/… gets the upstream's answer, traced, two requests through one tunnel", async () => {
    const proxy = await relay(sc.outboundPort);
    // One connection per origin: undici's pool frees a connection a moment after its answer's
    // end, so a request sent at once would open a second tunnel beside an idle one.
    const agent = new ProxyAgent({ uri: `http://127.0.0.1:${proxy.port}`, connections: 1 });
    try {
      const seen = app.requests.length;
      for (const path of ['/items/1', '/items/2']) {
        const res = await fetch(`http://catalog${path}`, { dispatcher: agent });
        expect(res.status).toBe(200);
        const body = (await res.json()) as { name: string; path: string; headers: Record<string, string> };
        expect(body).toMatchObject({ name: 'catalog', path, headers: { host: 'catalog' } });
        expect(body.headers['x-request-id']).toMatch(/\S/);
        expect(body.headers.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
      }
      expect(app.requests.slice(seen).map((r) => r.url)).toEqual(['/items/1', '/items/2']);
      // One connection to the proxy, opened by one CONNECT, carried both requests.
      expect(proxy.firstLines).toEqual(['CONNECT catalog:80 HTTP/1.1']);
    } finally {
      await agent.close();
      for (const s of proxy.sockets) s.destroy();
      proxy.server.close();
    }
  });

  it('serves EnvHttpProxyAgent pointed at an --upstream port, which names the service whatever the Host', async () => {
    const agent = new EnvHttpProxyAgent({ httpProxy: `http://127.0.0.1:${upstreamPort}`, noProxy: '' });
    try {
      const res = await request('http://reviews/via-upstream-port', { dispatcher: agent });
      expect(res.statusCode).toBe(200);
      expect(await res.body.json()).toMatchObject({ name: 'catalog', path: '/via-upstream-port', headers: { host: 'reviews' } });
    } finally {
      await agent.close();
    }
  });

  it('serves h2c with prior knowledge in a tunnel, routed by :authority as a direct HTTP/2 request', async () => {
    const socket = connect(sc.outboundPort, '127.0.0.1');
    socket.write('CONNECT catalog:80 HTTP/1.1\r\nHost: catalog:80\r\n\r\n');
    const [established] = (await once(socket, 'data')) as [Buffer];
    expect(established.toString('latin1')).toBe('HTTP/1.1 200 Connection Established\r\n\r\n');
    const session = connectH2('http://catalog', { createConnection: () => socket });
    try {
      const stream = session.request({ ':path': '/h2-in-tunnel', ':authority': 'catalog' });
      const [headers] = (await once(stream, 'response')) as [Record<string, string>];
      let body = '';
      for await (const chunk of stream) body += String(chunk);
      expect(headers[':status']).toBe(200);
      expect(JSON.parse(body)).toMatchObject({ name: 'catalog', path: '/h2-in-tunnel', headers: { host: 'catalog' } });
    } finally {
      session.destroy();
    }
  });

  it('refuses a CONNECT whose target is not host:port: 400 bad-request, counted', async () => {
    const before = metric(await scrape(sc), 'skein_malformed_requests_total', { direction: 'outbound', code: '400' });
    const answer = await rawExchange(sc.outboundPort, 'CONNECT /x HTTP/1.1\r\nHost: catalog\r\n\r\n');
    expect(answer).toMatch(/^HTTP\/1.1 400 /);
    expect(answer).toMatch(/\r\nx-skein-reason: bad-request\r\n/i);
    expect(answer).toContain('a CONNECT target must be host:port');
    expect(metric(await scrape(sc), 'skein_malformed_requests_total', { direction: 'outbound', code: '400' })).toBe(before + 1);
  });

  it('closes a tunnel whose client starts TLS (an https:// URL), counted as malformed and logged naming the target', async () => {
    const before = metric(await scrape(sc), 'skein_malformed_requests_total', { direction: 'outbound', code: '400' });
    const agent = new ProxyAgent({ uri: sc.outboundUrl });
    try {
      await expect(request('https://catalog/secure', { dispatcher: agent })).rejects.toThrow();
    } finally {
      await agent.close();
    }
    expect(metric(await scrape(sc), 'skein_malformed_requests_total', { direction: 'outbound', code: '400' })).toBe(before + 1);
    await waitUntil(() => sc.output().includes('CONNECT tunnel to catalog:443 closed: its client began TLS in it'), { what: 'the log line naming the target' });
  });

  it('still refuses CONNECT on the inbound listener', async () => {
    const answer = await rawExchange(sc.inboundPort, 'CONNECT catalog:80 HTTP/1.1\r\nHost: catalog:80\r\n\r\n');
    expect(answer).toMatch(/^HTTP\/1.1 400 /);
    expect(answer).toMatch(/\r\nx-skein-reason: bad-request\r\n/i);
    expect(answer).toContain('CONNECT is not supported');
  });
});
