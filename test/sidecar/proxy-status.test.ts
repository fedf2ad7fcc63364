/**
 * RFC 9209 Proxy-Status on the answers a sidecar makes itself: each names the sidecar and
 * direction that answered, the reason's error type and the body's text, on HTTP/1.1 (through the
 * pipeline and on the raw socket) and HTTP/2 gRPC; on a two-hop path the called sidecar's answer
 * reaches the caller with that sidecar's entry alone; an app's own answer goes on as it came.
 */
import { connect as connectH2, type IncomingHttpHeaders } from 'node:http2';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { echoHandler, Processes, startUpstream, tempDir, writeTempConfig, type SpawnedSidecar, type TestUpstream } from '../support/index.js';
import { rawExchange } from './http.js';
import { send } from './resilience-fixture.js';

describe('Proxy-Status on sidecar-made answers', () => {
  const procs = new Processes();
  let app: TestUpstream;
  let web: SpawnedSidecar;
  let catalog: SpawnedSidecar;
  /** Requests per path: a `/flaky` path is answered 503 the first time, then its connection is cut. */
  const seen = new Map<string, number>();

  beforeAll(async () => {
    app = await startUpstream((req, res) => {
      const n = (seen.get(req.url ?? '') ?? 0) + 1;
      seen.set(req.url ?? '', n);
      if (req.url === '/own-status') {
        // As a gateway in front of the app would answer.
        res.writeHead(502, { 'proxy-status': 'app-gateway; error=connection_refused', 'content-type': 'text/plain' });
        res.end('bad gateway');
        return;
      }
      if (req.url === '/plain-503') {
        res.writeHead(503, { 'content-type': 'text/plain' });
        res.end('busy');
        return;
      }
      if (req.url === '/hang') return;
      if (req.url?.startsWith('/flaky') === true) {
        if (n === 1) {
          res.writeHead(503, { 'content-type': 'text/plain' });
          res.end('busy');
        } else req.socket.destroy();
        return;
      }
      echoHandler('app')(req, res);
    });
    const endpoints = [{ address: '127.0.0.1', port: app.port }];
    // The called sidecar lets no caller without an identity in: its inbound answers 403 denied.
    catalog = await procs.sidecar({ service: 'catalog', appPort: app.port, config: writeTempConfig({ services: { catalog: { endpoints } }, intentions: { defaultAction: 'deny', rules: [] } }, tempDir()) });
    const config = writeTempConfig({
      services: {
        app: { retries: { attempts: 0 }, endpoints },
        gated: { endpoints },
        empty: { endpoints: [] },
        slow: { timeout: '300ms', retries: { attempts: 0 }, endpoints },
        flaky: { timeout: '10s', retries: { attempts: 1, on: ['gateway-error', 'reset'], backoff: { base: '1ms', max: '2ms' } }, endpoints },
        catalog: { retries: { attempts: 0 }, endpoints: [{ address: '127.0.0.1', port: catalog.inboundPort }] },
      },
      routes: { gated: [{ match: { pathPrefix: '/public' } }] },
    }, tempDir());
    web = await procs.sidecar({ service: 'web', appPort: app.port, config });
  });

  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') console.log(web?.output(), catalog?.output());
  });

  afterAll(async () => {
    await procs.killAll();
    await app.close();
  });

  const call = (service: string, path: string) => send(`${web.outboundUrl}${path}`, { headers: { host: service } });

  it('names the outbound sidecar and the error type: 404 no-route, 503 no-healthy-endpoints, 504 timeout', async () => {
    const noRoute = await call('gated', '/private');
    expect(noRoute.status).toBe(404);
    expect(noRoute.headers['x-skein-reason']).toBe('no-route');
    expect(noRoute.headers['proxy-status']).toBe('skein-web-outbound; error=destination_not_found; details="no route rule of gated matches GET /private"');

    const empty = await call('empty', '/');
    expect(empty.status).toBe(503);
    expect(empty.headers['proxy-status']).toBe('skein-web-outbound; error=destination_unavailable; details="no endpoint for empty"');

    const slow = await call('slow', '/hang');
    expect(slow.status).toBe(504);
    expect(slow.headers['proxy-status']).toBe('skein-web-outbound; error=http_response_timeout; details="slow did not answer within 300 ms"');
  });

  it('says what a retried try had received when the sidecar answers after it (received-status)', async () => {
    const flaky = await call('flaky', '/flaky-1');
    // The app answered 503, then cut the retry (a connection the retry found cut may be tried once more).
    expect(seen.get('/flaky-1')).toBeGreaterThanOrEqual(2);
    expect(flaky.status).toBe(503);
    expect(flaky.headers['x-skein-reason']).toBe('retries-exhausted');
    expect(flaky.headers['proxy-status']).toMatch(/^skein-web-outbound; error=destination_unavailable; details="[^"]*"; received-status=503$/);
  });

  it('answers a malformed request on the raw socket 400 with its entry, the text quoted and escaped', async () => {
    const answer = await rawExchange(web.outboundPort, 'GET /"x" HTTP/1.1\r\nHost: app\r\nBad Header\r\n\r\n');
    expect(answer).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    const field = /\r\nproxy-status: ([^\r\n]*)\r\n/.exec(answer)?.[1];
    expect(field).toMatch(/^skein-web-outbound; error=http_request_error; details="malformed HTTP request: [^"\\]*(?:\\.[^"\\]*)*"$/);
  });

  it('answers a gRPC call trailers-only with its entry in the head', async () => {
    const session = connectH2(web.outboundUrl);
    try {
      const headers = await new Promise<IncomingHttpHeaders>((resolve, reject) => {
        const stream = session.request({ ':method': 'POST', ':path': '/pkg.Svc/Call', ':authority': 'nowhere', 'content-type': 'application/grpc', te: 'trailers' });
        stream.on('response', resolve);
        stream.on('error', reject);
        stream.end(Buffer.from([0, 0, 0, 0, 0]));
        stream.resume();
      });
      expect(headers[':status']).toBe(200);
      expect(headers['grpc-status']).toBe('12');
      expect(headers['proxy-status']).toBe('skein-web-outbound; error=destination_not_found; details="no service named by \\"nowhere\\""');
    } finally {
      session.close();
    }
  });

  it('relays the called sidecar\'s answer with that sidecar\'s entry alone, and an app\'s answer as it came', async () => {
    const denied = await call('catalog', '/anything');
    expect(denied.status).toBe(403);
    expect(denied.headers['x-skein-reason']).toBe('denied');
    expect(denied.headers['proxy-status']).toBe('skein-catalog-inbound; error=http_request_denied; details="a caller without identity may not call catalog"');

    const own = await call('app', '/own-status');
    expect(own.status).toBe(502);
    expect(own.headers['proxy-status']).toBe('app-gateway; error=connection_refused');
    const plain = await call('app', '/plain-503');
    expect(plain.status).toBe(503);
    expect(plain.headers['proxy-status']).toBeUndefined();
    expect(plain.headers['x-skein-reason']).toBeUndefined();
  });
});
