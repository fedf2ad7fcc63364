/**
 * The core proxy path through a real pair: app → sidecar "web" (outbound) → sidecar
 * "catalog" (inbound) → catalog app, in plain HTTP (mTLS has its own file).
 */
import { once } from 'node:events';
import { connect as connectH2 } from 'node:http2';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { echoHandler, freePorts, Processes, startUpstream, tempDir, writeTempConfig, type SpawnedSidecar, type TestUpstream } from '../support/index.js';
import { get, testAgent } from './http.js';
import { request } from 'undici';

describe('sidecar pair: proxying', () => {
  const procs = new Processes();
  const agent = testAgent();
  let catalogApp: TestUpstream;
  let webApp: TestUpstream;
  let web: SpawnedSidecar;
  let catalog: SpawnedSidecar;
  let refusedPort: number;

  beforeAll(async () => {
    catalogApp = await startUpstream((req, res) => {
      if (req.url === '/slow-stream') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        let n = 0;
        const timer = setInterval(() => {
          res.write(`chunk-${n}\n`);
          if (++n === 3) {
            clearInterval(timer);
            res.end();
          }
        }, 300);
        return;
      }
      if (req.url === '/gzip-te') {
        // A transfer coding the client must undo; node:http chunks the body after it.
        res.writeHead(200, { 'content-type': 'text/plain', 'transfer-encoding': 'gzip, chunked' });
        res.end(gzipSync('hello, coded'));
        return;
      }
      if (req.url === '/proxy-status') {
        // As a gateway in front of the app would answer (RFC 9209).
        res.writeHead(504, { 'proxy-status': 'upstream; error=http_response_timeout', 'content-type': 'text/plain' });
        res.end('gateway timeout');
        return;
      }
      if (req.url === '/head-chunked' && req.method === 'HEAD') {
        // What a GET would get: a streamed answer, chunked.
        res.writeHead(200, { 'content-type': 'text/plain', 'transfer-encoding': 'chunked' });
        res.end();
        return;
      }
      if (req.url === '/no-content-with-length') {
        // node:http sends the header as given, though a 204 may not carry it (RFC 9110 §8.6).
        res.writeHead(204, { 'content-length': '5' });
        res.end();
        return;
      }
      if (req.method === 'POST') {
        // Echo the body back, streaming, without content-length (chunked).
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-upstream': 'catalog' });
        req.pipe(res);
        return;
      }
      echoHandler('catalog')(req, res);
    });
    webApp = await startUpstream(echoHandler('web-app'));
    const [catalogInbound, refused] = (await freePorts(2)) as [number, number];
    refusedPort = refused;
    const config = writeTempConfig({
      version: 'p1',
      services: {
        catalog: { timeout: '10s', endpoints: [{ address: '127.0.0.1', port: catalogInbound, labels: { version: 'v1' } }] },
        ghost: { retries: { attempts: 1, backoff: { base: '1ms', max: '2ms' } }, endpoints: [{ address: '127.0.0.1', port: refused }] },
        empty: { endpoints: [] },
      },
    }, tempDir());
    catalog = await procs.sidecar({ service: 'catalog', appPort: catalogApp.port, config, inboundPort: catalogInbound });
    const [upstreamPort] = (await freePorts(1)) as [number];
    web = await procs.sidecar({ service: 'web', appPort: webApp.port, config, upstreams: [{ service: 'catalog', port: upstreamPort }] });
    (web as { upstreamPort?: number }).upstreamPort = upstreamPort;
  });

  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') console.log(`--- web ---\n${web?.output()}\n--- catalog ---\n${catalog?.output()}`);
  });

  afterAll(async () => {
    await agent.close();
    await procs.killAll();
    await catalogApp.close();
    await webApp.close();
  });

  it('proxies a GET by Host header, in all its spellings', async () => {
    const fqdn = ['catalog.', 'catalog.:80', 'catalog.service.consul.', 'catalog.ns.svc.cluster.local.'];
    const kubernetes = ['catalog.default.svc', 'catalog.default.svc.cluster.local', 'catalog.default.svc.mycluster.local'];
    for (const host of ['catalog', 'catalog:80', 'catalog.service.consul', 'catalog.service.consul:8080', ...fqdn, ...kubernetes]) {
      const res = await get(agent, `${web.outboundUrl}/items?x=1`, { host });
      expect(res.status, host).toBe(200);
      expect(res.json()).toMatchObject({ name: 'catalog', path: '/items?x=1' });
      expect(res.json<{ headers: Record<string, string> }>().headers.host).toBe(host);
    }
  });

  it('proxies absolute-form requests (HTTP proxy mode) and the dedicated --upstream port', async () => {
    const { rawExchange } = await import('./http.js');
    for (const authority of ['catalog', 'catalog.']) {
      const answer = await rawExchange(web.outboundPort, `GET http://${authority}/abs?q=2 HTTP/1.1\r\nHost: catalog\r\nConnection: close\r\n\r\n`);
      expect(answer, authority).toMatch(/^HTTP\/1.1 200/);
      expect(answer).toContain('"path":"/abs?q=2"');
    }
    const port = (web as { upstreamPort?: number }).upstreamPort!;
    const res = await get(agent, `http://127.0.0.1:${port}/via-upstream-port`, { host: 'anything-else' });
    expect(res.status).toBe(200);
    expect(res.json()).toMatchObject({ name: 'catalog', path: '/via-upstream-port' });
  });

  it('sends the Host it routed by: an absolute-form target\'s authority replaces the Host received; a dedicated port fills in its service', async () => {
    const { rawExchange } = await import('./http.js');
    // The echo's JSON, whatever the framing (chunked or not).
    const body = (answer: string) => JSON.parse(/\{.*\}/s.exec(answer)?.[0] ?? 'null') as { path: string; headers: Record<string, string> };
    // RFC 9112 §3.2.2: the target's authority wins, and the proxy sends it as the Host.
    const replaced = await rawExchange(web.outboundPort, 'GET http://catalog/abs?q=2 HTTP/1.1\r\nHost: ghost\r\nConnection: close\r\n\r\n');
    expect(replaced).toMatch(/^HTTP\/1.1 200/);
    expect(body(replaced)).toMatchObject({ path: '/abs?q=2', headers: { host: 'catalog' } });
    const without = await rawExchange(web.outboundPort, 'GET http://catalog:80/x HTTP/1.1\r\nConnection: close\r\n\r\n');
    expect(body(without)).toMatchObject({ path: '/x', headers: { host: 'catalog:80' } });
    // An HTTP/1.0 caller of the --upstream port named no host: the app sees the service's name, not an address.
    const port = (web as { upstreamPort?: number }).upstreamPort!;
    const legacy = await rawExchange(port, 'GET /legacy HTTP/1.0\r\n\r\n');
    expect(legacy).toMatch(/^HTTP\/1.1 200/);
    expect(body(legacy)).toMatchObject({ path: '/legacy', headers: { host: 'catalog' } });
    // Nor does one that named only the port's own address, as a client pointed at it does; any other Host is the caller's.
    for (const [host, sent] of [[`127.0.0.1:${port}`, 'catalog'], [`localhost:${port}`, 'catalog'], ['[::1]', 'catalog'], ['catalog.service.consul', 'catalog.service.consul'], ['anything-else', 'anything-else']]) {
      const answer = await rawExchange(port, `GET /own HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
      expect(body(answer), host).toMatchObject({ path: '/own', headers: { host: sent } });
    }
    const absolute = await rawExchange(port, `GET http://127.0.0.1:${port}/abs HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`);
    expect(body(absolute)).toMatchObject({ path: '/abs', headers: { host: 'catalog' } });
  });

  it('sends the app an absolute-form request to the inbound listener in origin form, its Host the target\'s authority', async () => {
    const { rawExchange } = await import('./http.js');
    const body = (answer: string) => JSON.parse(/\{.*\}/s.exec(answer)?.[0] ?? 'null') as { path: string; headers: Record<string, string> };
    // RFC 9112 §3.2.2, as on the outbound: the target's authority wins over the Host received.
    const replaced = await rawExchange(catalog.inboundPort, 'GET http://catalog/abs?q=2 HTTP/1.1\r\nHost: ghost\r\nConnection: close\r\n\r\n');
    expect(replaced).toMatch(/^HTTP\/1.1 200/);
    expect(body(replaced)).toMatchObject({ path: '/abs?q=2', headers: { host: 'catalog' } });
    const bare = await rawExchange(catalog.inboundPort, 'GET http://catalog:8080 HTTP/1.0\r\n\r\n');
    expect(bare).toMatch(/^HTTP\/1.1 200/);
    expect(body(bare)).toMatchObject({ path: '/', headers: { host: 'catalog:8080' } });
  });

  it('streams request and response bodies both ways (chunked, 2 MiB)', async () => {
    const big = Buffer.alloc(2 * 1024 * 1024, 'abcdefgh');
    const res = await request(`${web.outboundUrl}/upload`, { dispatcher: agent, method: 'POST', headers: { host: 'catalog' }, body: big });
    expect(res.statusCode).toBe(200);
    const echoed = Buffer.from(await res.body.arrayBuffer());
    expect(echoed.length).toBe(big.length);
    expect(echoed.equals(big)).toBe(true);
    const small = await get(agent, `${web.outboundUrl}/small`, { host: 'catalog', 'content-type': 'application/json' }, 'POST', '{"a":1}');
    expect(small.text).toBe('{"a":1}');
  });

  it('relays an answer\'s transfer codings other than chunked (gzip, chunked) over both hops, re-chunked but never dropped', async () => {
    const { rawExchange } = await import('./http.js');
    const answer = Buffer.from(await rawExchange(web.outboundPort, 'GET /gzip-te HTTP/1.1\r\nHost: catalog\r\nConnection: close\r\n\r\n'), 'latin1');
    const split = answer.indexOf('\r\n\r\n');
    const head = answer.toString('latin1', 0, split);
    expect(head).toMatch(/^HTTP\/1.1 200 /);
    const codings = [...head.matchAll(/\r\ntransfer-encoding: ([^\r]*)/gi)].map((m) => m[1]!.trim().toLowerCase()).join(', ');
    expect(codings).toBe('gzip, chunked');
    // De-chunked, the body is still gzip, which the client undoes.
    const chunks: Buffer[] = [];
    for (let at = split + 4; ; ) {
      const eol = answer.indexOf('\r\n', at);
      const size = parseInt(answer.toString('latin1', at, eol), 16);
      if (size === 0) break;
      chunks.push(answer.subarray(eol + 2, eol + 2 + size));
      at = eol + 2 + size + 2;
    }
    expect(gunzipSync(Buffer.concat(chunks)).toString()).toBe('hello, coded');
  });

  it('sends an HTTP/1.0 caller such an answer without Transfer-Encoding, which HTTP/1.0 does not have', async () => {
    const { rawExchange } = await import('./http.js');
    const answer = Buffer.from(await rawExchange(web.outboundPort, 'GET /gzip-te HTTP/1.0\r\nHost: catalog\r\n\r\n'), 'latin1');
    const split = answer.indexOf('\r\n\r\n');
    const head = answer.toString('latin1', 0, split);
    expect(head).toMatch(/^HTTP\/1.1 200 /);
    expect(head).not.toMatch(/transfer-encoding/i);
    expect(head).toMatch(/\r\nconnection: close/i);
    // The body runs to the connection's end, as sent: still gzip.
    expect(gunzipSync(answer.subarray(split + 4)).toString()).toBe('hello, coded');
  });

  it('still answers an HTTP/2 caller such an answer (HTTP/2 has no transfer codings)', async () => {
    const session = connectH2(`http://127.0.0.1:${web.outboundPort}`);
    try {
      const stream = session.request({ ':path': '/gzip-te', ':authority': 'catalog' });
      const [headers] = (await once(stream, 'response')) as [Record<string, string>];
      const chunks: Buffer[] = [];
      for await (const chunk of stream) chunks.push(chunk as Buffer);
      expect(headers[':status']).toBe(200);
      expect(headers['transfer-encoding']).toBeUndefined();
      expect(gunzipSync(Buffer.concat(chunks)).toString()).toBe('hello, coded');
    } finally {
      session.close();
    }
  });

  it('passes an app\'s 204 on without the Content-Length it may not carry, to HTTP/1.1 and HTTP/2 callers', async () => {
    const { rawExchange } = await import('./http.js');
    const answer = await rawExchange(web.outboundPort, 'GET /no-content-with-length HTTP/1.1\r\nHost: catalog\r\nConnection: close\r\n\r\n');
    expect(answer).toMatch(/^HTTP\/1.1 204 /);
    expect(answer).not.toMatch(/content-length/i);
    const session = connectH2(`http://127.0.0.1:${web.outboundPort}`);
    try {
      const stream = session.request({ ':path': '/no-content-with-length', ':authority': 'catalog' });
      const [headers] = (await once(stream, 'response')) as [Record<string, string>];
      for await (const chunk of stream) expect(chunk).toBeUndefined();
      expect(headers[':status']).toBe(204);
      expect(headers['content-length']).toBeUndefined();
    } finally {
      session.close();
    }
  });

  it('passes an answer\'s Proxy-Status (RFC 9209) on over both hops, and a request\'s, but never a request\'s Proxy-Authorization', async () => {
    const answer = await get(agent, `${web.outboundUrl}/proxy-status`, { host: 'catalog' });
    expect(answer.status).toBe(504);
    expect(answer.headers['proxy-status']).toBe('upstream; error=http_response_timeout');
    const echoed = await get(agent, `${web.outboundUrl}/echo`, { host: 'catalog', 'proxy-status': 'client-proxy', 'proxy-authorization': 'Basic dTpw' });
    expect(echoed.json<{ headers: Record<string, string> }>().headers).toMatchObject({ 'proxy-status': 'client-proxy' });
    expect(echoed.json<{ headers: Record<string, string> }>().headers['proxy-authorization']).toBeUndefined();
  });

  it('passes a HEAD answer\'s Transfer-Encoding: chunked on over both hops, with no body or chunk after the head (RFC 9110 §9.3.2)', async () => {
    const { rawExchange } = await import('./http.js');
    const answer = await rawExchange(web.outboundPort, 'HEAD /head-chunked HTTP/1.1\r\nHost: catalog\r\nConnection: close\r\n\r\n');
    expect(answer).toMatch(/^HTTP\/1.1 200 /);
    expect(answer).toMatch(/\r\ntransfer-encoding: chunked\r\n/i);
    expect(answer.match(/transfer-encoding/gi)).toHaveLength(1);
    // Nothing after the head: no body and no 0-length chunk.
    expect(answer.endsWith('\r\n\r\n')).toBe(true);
    expect(answer.indexOf('\r\n\r\n')).toBe(answer.length - 4);
    // An HTTP/1.0 caller gets no Transfer-Encoding, which HTTP/1.0 does not have.
    const legacy = await rawExchange(web.outboundPort, 'HEAD /head-chunked HTTP/1.0\r\nHost: catalog\r\n\r\n');
    expect(legacy).toMatch(/^HTTP\/1.1 200 /);
    expect(legacy).not.toMatch(/transfer-encoding/i);
  });

  it('delivers a slowly streamed response incrementally', async () => {
    const res = await request(`${web.outboundUrl}/slow-stream`, { dispatcher: agent, headers: { host: 'catalog' } });
    expect(res.statusCode).toBe(200);
    const started = Date.now();
    const arrivals: number[] = [];
    for await (const chunk of res.body) {
      arrivals.push(Date.now() - started);
      expect(String(chunk)).toMatch(/chunk-/);
    }
    // The first chunk arrives long before the last one was written.
    expect(arrivals.length).toBeGreaterThanOrEqual(2);
    expect(arrivals[arrivals.length - 1]! - arrivals[0]!).toBeGreaterThan(300);
  });

  it('keeps trace ids across two hops with a new span per hop, and keeps x-request-id', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const callerSpan = '00f067aa0ba902b7';
    const res = await get(agent, `${web.outboundUrl}/traced`, { host: 'catalog', traceparent: `00-${traceId}-${callerSpan}-01`, 'x-request-id': 'req-123' });
    const headers = res.json<{ headers: Record<string, string> }>().headers;
    const [, appTrace, appSpan] = headers.traceparent!.split('-');
    expect(appTrace).toBe(traceId);
    expect(headers['x-b3-traceid']).toBe(traceId);
    // The app's parent is the outbound hop's span: neither the caller's nor the app's own.
    const outboundSpan = headers['x-b3-parentspanid']!;
    expect(outboundSpan).toMatch(/^[0-9a-f]{16}$/);
    expect(outboundSpan).not.toBe(callerSpan);
    expect(appSpan).not.toBe(outboundSpan);
    expect(headers.b3).toBe(`${traceId}-${appSpan}-1-${outboundSpan}`);
    expect(headers['x-request-id']).toBe('req-123');
    expect(headers['x-skein-attempt']).toBe('1');

    // One hop (straight to the inbound listener): the parent is exactly the caller's span.
    const direct = await get(agent, `http://127.0.0.1:${catalog.inboundPort}/one-hop`, { traceparent: `00-${traceId}-${callerSpan}-01` });
    expect(direct.json<{ headers: Record<string, string> }>().headers['x-b3-parentspanid']).toBe(callerSpan);

    // A request without a trace or id gets both.
    const fresh = (await get(agent, `${web.outboundUrl}/fresh`, { host: 'catalog' })).json<{ headers: Record<string, string> }>().headers;
    expect(fresh.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    expect(fresh['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('answers unknown destinations 404 no-route and refused endpoints 503 upstream-connect-failure', async () => {
    const unknown = await get(agent, `${web.outboundUrl}/`, { host: 'nope' });
    expect(unknown.status).toBe(404);
    expect(unknown.headers['x-skein-reason']).toBe('no-route');
    const refused = await get(agent, `${web.outboundUrl}/`, { host: 'ghost' });
    expect(refused.status).toBe(503);
    expect(refused.headers['x-skein-reason']).toBe('upstream-connect-failure');
    expect(refused.text).toContain(`127.0.0.1:${refusedPort}`);
    const empty = await get(agent, `${web.outboundUrl}/`, { host: 'empty' });
    expect(empty.status).toBe(503);
    expect(empty.headers['x-skein-reason']).toBe('no-healthy-endpoints');
    // The refused attempt was retried once (attempts: 1) and counted.
    const metrics = (await get(agent, `${web.adminUrl}/metrics`)).text;
    expect(metrics).toMatch(/skein_retries_total\{destination="ghost",reason="connect-failure"\} 1/);
  });

  it('counts requests per edge in /metrics on both sides', async () => {
    await get(agent, `${web.outboundUrl}/count`, { host: 'catalog' });
    const out = (await get(agent, `${web.adminUrl}/metrics`)).text;
    expect(out).toMatch(/skein_requests_total\{direction="outbound",source="web",destination="catalog",destination_subset="\*",code="200"[^}]*\} \d+/);
    const inbound = (await get(agent, `${catalog.adminUrl}/metrics`)).text;
    expect(inbound).toMatch(/skein_requests_total\{direction="inbound",source="unknown",destination="catalog",destination_subset="v1",code="200"[^}]*\} \d+/);
  });

  it('closes the upstream request when the client goes away mid-stream', async () => {
    const controller = new AbortController();
    const res = await request(`${web.outboundUrl}/slow-stream`, { dispatcher: agent, headers: { host: 'catalog' }, signal: controller.signal });
    expect(res.statusCode).toBe(200);
    controller.abort();
    await once(res.body, 'error').catch(() => {});
    // The sidecars are still fine.
    expect((await get(agent, `${web.outboundUrl}/after-abort`, { host: 'catalog' })).status).toBe(200);
  });
});
