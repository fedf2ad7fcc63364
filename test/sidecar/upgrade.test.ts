/**
 * Upgrades. Only WebSocket is honoured (as Envoy's default): `curl --http2` asks every
 * HTTP/1.1 server for `Upgrade: h2c`, and such a request (or any other unsupported Upgrade)
 * is served as a plain proxied request with Upgrade, HTTP2-Settings and the Connection tokens
 * dropped, so it gets routing, timeouts, retries and accounting. A WebSocket upgrade the
 * endpoint declines (an app without an upgrade handler answers it with a plain 200) reaches
 * the client as the response it is (counted with its own status), and nothing the client
 * sends afterwards on that connection may reach the endpoint around routing. Checked on a
 * plain outbound sidecar (endpoint = the app) and through an mTLS pair (outbound → peer's
 * inbound → its app), with a WebSocket upgrade that is accepted still working on the plain
 * path (the pair's is in mtls.test.ts). A WebSocket upgrade gets its route's fault (abort,
 * delay) and its subset's circuit breaker as a request does. A client that leaves before the
 * endpoint's 101 is seen leaving at once, whether or not it sent bytes past its request
 * first, on the outbound and the inbound hop alike; one that stays has those bytes delivered
 * after the 101. At the sidecar's drain timeout an upgrade its endpoint has not answered gets
 * `503 retries-exhausted`; an open tunnel is cut.
 */
import { createHash } from 'node:crypto';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { echoHandler, freePorts, makeCa, makeLeaf, Processes, startUpstream, tempDir, waitUntil, writeIdentity, writeTempConfig, type SpawnedSidecar, type TestUpstream } from '../support/index.js';
import { metric, scrape } from './resilience-fixture.js';

const H2C = 'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n';
/** A WebSocket upgrade (honoured; the echo apps have no upgrade handler, so they decline it with a 200). */
const WS = 'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: MDEyMzQ1Njc4OWFiY2RlZg==\r\nSec-WebSocket-Version: 13\r\n';

interface RawResponse {
  readonly status: number;
  readonly head: string;
  readonly body: string;
}

/** A raw client connection that reads whole HTTP/1.1 responses (Content-Length or chunked) and notices the server closing. */
class RawClient {
  private readonly socket: Socket;
  private data = '';
  closed = false;
  private waiter: (() => void) | null = null;

  constructor(port: number) {
    this.socket = connect({ host: '127.0.0.1', port });
    this.socket.setEncoding('latin1');
    this.socket.on('data', (d: string) => {
      this.data += d;
      this.waiter?.();
    });
    this.socket.on('close', () => {
      this.closed = true;
      this.waiter?.();
    });
    this.socket.on('error', () => {});
  }

  write(text: string): void {
    this.socket.write(text);
  }

  /** Writes `text` and resolves once the kernel has it: a destroy after this still delivers it, before the FIN. */
  send(text: string): Promise<void> {
    return new Promise((resolve) => this.socket.write(text, () => resolve()));
  }

  /** Resolves once `check` passes on what has arrived, or the connection closed, or after `ms`. */
  private wait(check: () => boolean, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.waiter = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.waiter = () => {
        if (this.closed || check()) done();
      };
      this.waiter();
    });
  }

  /** The next whole response. */
  async response(ms = 5000): Promise<RawResponse> {
    const complete = (): number => {
      const end = this.data.indexOf('\r\n\r\n');
      if (end < 0) return -1;
      const head = this.data.slice(0, end);
      if (/\r\ntransfer-encoding: *chunked/i.test(head)) {
        const last = this.data.indexOf('\r\n0\r\n\r\n', end);
        return last < 0 ? -1 : last + 7;
      }
      const length = /\r\ncontent-length: *(\d+)/i.exec(head);
      if (length === null) return end + 4;
      return this.data.length >= end + 4 + Number(length[1]) ? end + 4 + Number(length[1]) : -1;
    };
    await this.wait(() => complete() >= 0, ms);
    const at = complete();
    if (at < 0) throw new Error(`no whole response; got ${JSON.stringify(this.data)} (closed: ${this.closed})`);
    const text = this.data.slice(0, at);
    this.data = this.data.slice(at);
    const end = text.indexOf('\r\n\r\n');
    const head = text.slice(0, end);
    let body = text.slice(end + 4);
    if (/\r\ntransfer-encoding: *chunked/i.test(head)) {
      let decoded = '';
      for (let pos = 0; ; ) {
        const eol = body.indexOf('\r\n', pos);
        const size = parseInt(body.slice(pos, eol), 16);
        if (!(size > 0)) break;
        decoded += body.slice(eol + 2, eol + 2 + size);
        pos = eol + 2 + size + 2;
      }
      body = decoded;
    }
    return { status: Number(text.slice(9, 12)), head, body };
  }

  /** Whatever else arrives within `ms` (or until the server closes). */
  async rest(ms: number): Promise<string> {
    await this.wait(() => false, ms);
    const out = this.data;
    this.data = '';
    return out;
  }

  /** Waits for `pattern` in what arrived. */
  async until(pattern: RegExp, ms = 5000): Promise<string> {
    await this.wait(() => pattern.test(this.data), ms);
    if (!pattern.test(this.data)) throw new Error(`no ${pattern} in ${JSON.stringify(this.data)}`);
    const out = this.data;
    this.data = '';
    return out;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Sends `request` on a new connection and expects the 504 timeout answer at a 1s route timeout (after 0.9s–2.5s). */
async function expectRouteTimeout(port: number, request: string): Promise<void> {
  const client = new RawClient(port);
  const started = Date.now();
  client.write(request);
  const res = await client.response(5000);
  const took = Date.now() - started;
  expect(res.status, res.head).toBe(504);
  expect(res.head).toMatch(/\r\nx-skein-reason: timeout/i);
  expect(took).toBeGreaterThan(900);
  expect(took).toBeLessThan(2500);
  client.destroy();
}

/** A WebSocket-style endpoint: answers the upgrade (with a first message in the same write), then echoes bytes upper-cased. */
function acceptUpgrades(upstream: TestUpstream): void {
  upstream.server.on('upgrade', (req, socket) => {
    const accept = createHash('sha1').update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\nWELCOME`);
    socket.on('data', (d: Buffer) => socket.write(d.toString().toUpperCase()));
  });
}

/**
 * The checks for one outbound listener whose `catalog` routes only `/api` to `app` (which
 * has no upgrade handler) and whose `other` service is `otherApp`.
 */
async function expectDeclinedUpgradeStaysHttp(outboundPort: number, app: TestUpstream, otherApp: TestUpstream): Promise<void> {
  const appSeen = app.requests.length;
  const otherSeen = otherApp.requests.length;

  // 1. The declined upgrade's answer comes back as the app gave it; the connection then closes.
  const client = new RawClient(outboundPort);
  client.write(`GET /api/one HTTP/1.1\r\nHost: catalog\r\n${WS}\r\n`);
  const first = await client.response();
  expect(first.status, first.head).toBe(200);
  expect(JSON.parse(first.body)).toMatchObject({ name: 'catalog', path: '/api/one' });
  expect(first.head).toMatch(/\r\nconnection: close/i);
  // 2. Later requests on that connection: none may reach the app (no route matches /nope; `other` is another service).
  client.write('GET /nope HTTP/1.1\r\nHost: catalog\r\n\r\nGET /api/two HTTP/1.1\r\nHost: other\r\n\r\n');
  const after = await client.rest(500);
  expect(after).not.toMatch(/"name":"catalog"/);
  expect(after === '' || /^HTTP\/1.1 404 /.test(after), after).toBe(true);
  expect(client.closed).toBe(true);
  client.destroy();

  // 3. The same with the next requests pipelined behind the upgrade request, in one write.
  const pipelined = new RawClient(outboundPort);
  pipelined.write(`GET /api/three HTTP/1.1\r\nHost: catalog\r\n${WS}\r\nGET /nope HTTP/1.1\r\nHost: catalog\r\n\r\nGET /api/four HTTP/1.1\r\nHost: other\r\n\r\n`);
  const third = await pipelined.response();
  expect(third.status, third.head).toBe(200);
  expect(JSON.parse(third.body)).toMatchObject({ name: 'catalog', path: '/api/three' });
  const rest = await pipelined.rest(500);
  expect(rest).not.toMatch(/"name":"catalog"/);
  pipelined.destroy();

  // (The app's own sidecar checks its health on /health meanwhile; that is not a proxied request.)
  expect(app.requests.slice(appSeen).map((r) => r.url).filter((url) => url !== '/health')).toEqual(['/api/one', '/api/three']);
  // The other service never saw a request that went around routing.
  expect(otherApp.requests.slice(otherSeen).filter((r) => r.url !== '/health')).toEqual([]);
}

describe('a WebSocket upgrade the upstream declines', () => {
  const procs = new Processes();
  const upstreams: TestUpstream[] = [];

  afterAll(async () => {
    await procs.killAll();
    await Promise.all(upstreams.map((u) => u.close()));
  });

  describe('on a plain outbound sidecar (the endpoint is the app)', () => {
    let app: TestUpstream;
    let otherApp: TestUpstream;
    let wsApp: TestUpstream;
    let web: SpawnedSidecar;

    beforeAll(async () => {
      app = await startUpstream(echoHandler('catalog'));
      otherApp = await startUpstream(echoHandler('other'));
      wsApp = await startUpstream(echoHandler('ws'));
      acceptUpgrades(wsApp);
      const webApp = await startUpstream(echoHandler('web'));
      upstreams.push(app, otherApp, wsApp, webApp);
      const at = (u: TestUpstream) => [{ address: '127.0.0.1', port: u.port, labels: { version: 'v1' } }];
      const config = writeTempConfig({
        version: '1',
        services: { catalog: { endpoints: at(app) }, other: { endpoints: at(otherApp) }, ws: { endpoints: at(wsApp) } },
        routes: { catalog: [{ match: { pathPrefix: '/api' } }] },
      });
      web = await procs.sidecar({ service: 'web', appPort: webApp.port, config });
    });

    afterEach((ctx) => {
      if (ctx.task.result?.state === 'fail') console.log(`--- web ---\n${web?.output()}`);
    });

    it('answers it as a plain response, counts its real status, and lets nothing later on the connection bypass routing', async () => {
      await expectDeclinedUpgradeStaysHttp(web.outboundPort, app, otherApp);
      const s = await scrape(web);
      expect(metric(s, 'skein_requests_total', { direction: 'outbound', destination: 'catalog', code: '101' })).toBe(0);
      expect(metric(s, 'skein_requests_total', { direction: 'outbound', destination: 'catalog', code: '200' })).toBe(2);
    });

    it('still tunnels an upgrade the endpoint accepts, with bytes it sent along with its 101', async () => {
      const key = Buffer.from('0123456789abcdef').toString('base64');
      const client = new RawClient(web.outboundPort);
      client.write(`GET /chat HTTP/1.1\r\nHost: ws\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
      const head = await client.until(/WELCOME/);
      expect(head).toMatch(/^HTTP\/1.1 101 /);
      client.write('hello tunnel');
      expect(await client.until(/HELLO TUNNEL/)).toBe('HELLO TUNNEL');
      client.destroy();
      expect(metric(await scrape(web), 'skein_requests_total', { direction: 'outbound', destination: 'ws', code: '101' })).toBe(1);
    });
  });

  describe('through an mTLS sidecar pair (declined by the peer\'s app)', () => {
    let app: TestUpstream;
    let otherApp: TestUpstream;
    let web: SpawnedSidecar;
    let catalog: SpawnedSidecar;

    beforeAll(async () => {
      app = await startUpstream(echoHandler('catalog'));
      otherApp = await startUpstream(echoHandler('other'));
      const webApp = await startUpstream(echoHandler('web'));
      upstreams.push(app, otherApp, webApp);
      const ca = makeCa();
      const dir = tempDir();
      const [catalogInbound, otherInbound] = (await freePorts(2)) as [number, number];
      const config = writeTempConfig(
        {
          version: '1',
          services: {
            catalog: { endpoints: [{ address: '127.0.0.1', port: catalogInbound, labels: { version: 'v1' } }] },
            other: { endpoints: [{ address: '127.0.0.1', port: otherInbound, labels: { version: 'v1' } }] },
          },
          routes: { catalog: [{ match: { pathPrefix: '/api' } }] },
        },
        dir,
      );
      catalog = await procs.sidecar({ service: 'catalog', appPort: app.port, config, inboundPort: catalogInbound, identity: writeIdentity(dir, 'catalog', makeLeaf(ca, 'catalog')) });
      await procs.sidecar({ service: 'other', appPort: otherApp.port, config, inboundPort: otherInbound, identity: writeIdentity(dir, 'other', makeLeaf(ca, 'other')) });
      web = await procs.sidecar({ service: 'web', appPort: webApp.port, config, identity: writeIdentity(dir, 'web', makeLeaf(ca, 'web')) });
    });

    afterEach((ctx) => {
      if (ctx.task.result?.state === 'fail') console.log(`--- web ---\n${web?.output()}\n--- catalog ---\n${catalog?.output()}`);
    });

    it('answers it as a plain response on both sidecars, counts its real status on both, and lets nothing later bypass routing', async () => {
      await expectDeclinedUpgradeStaysHttp(web.outboundPort, app, otherApp);
      const out = await scrape(web);
      expect(metric(out, 'skein_requests_total', { direction: 'outbound', destination: 'catalog', code: '101' })).toBe(0);
      expect(metric(out, 'skein_requests_total', { direction: 'outbound', destination: 'catalog', code: '200' })).toBe(2);
      const inbound = await scrape(catalog);
      expect(metric(inbound, 'skein_requests_total', { direction: 'inbound', destination: 'catalog', code: '101' })).toBe(0);
      expect(metric(inbound, 'skein_requests_total', { direction: 'inbound', destination: 'catalog', code: '200' })).toBe(2);
    });
  });
});

describe('an h2c upgrade request (what `curl --http2` sends) is a plain proxied request', () => {
  const procs = new Processes();
  const upstreams: TestUpstream[] = [];
  let app: TestUpstream;
  let web: SpawnedSidecar;

  beforeAll(async () => {
    app = await startUpstream(echoHandler('catalog'));
    const slowApp = await startUpstream((_req, res) => {
      setTimeout(() => res.end('late'), 3000).unref();
    });
    const webApp = await startUpstream(echoHandler('web'));
    upstreams.push(app, slowApp, webApp);
    const [dead] = (await freePorts(1)) as [number];
    const at = (port: number) => ({ address: '127.0.0.1', port, labels: { version: 'v1' } });
    const config = writeTempConfig({
      version: '1',
      services: {
        catalog: { endpoints: [at(app.port)] },
        slow: { timeout: '1s', retries: { attempts: 0 }, endpoints: [at(slowApp.port)] },
        flaky: { retries: { attempts: 2, backoff: { base: '1ms', max: '5ms' } }, endpoints: [at(dead), at(app.port)] },
      },
    });
    web = await procs.sidecar({ service: 'web', appPort: webApp.port, config });
  });

  afterAll(async () => {
    await procs.killAll();
    await Promise.all(upstreams.map((u) => u.close()));
  });

  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') console.log(`--- web ---\n${web?.output()}`);
  });

  it('reaches the app without Upgrade, HTTP2-Settings or their Connection tokens, and keeps the connection for routed requests', async () => {
    const client = new RawClient(web.outboundPort);
    client.write(`GET /one HTTP/1.1\r\nHost: catalog\r\n${H2C}\r\n`);
    const first = await client.response();
    expect(first.status, first.head).toBe(200);
    const seen = JSON.parse(first.body) as { headers: Record<string, string> };
    expect(seen.headers.upgrade).toBeUndefined();
    expect(seen.headers['http2-settings']).toBeUndefined();
    expect(seen.headers.connection ?? '').not.toMatch(/upgrade|http2-settings/i);
    expect(first.head).not.toMatch(/\r\nconnection: close/i);
    // The connection is still an HTTP/1.1 one: the next request on it is routed as any other.
    client.write(`GET /two HTTP/1.1\r\nHost: catalog\r\n${H2C}\r\n`);
    const second = await client.response();
    expect(second.status, second.head).toBe(200);
    expect(JSON.parse(second.body)).toMatchObject({ name: 'catalog', path: '/two' });
    expect(client.closed).toBe(false);
    client.destroy();
  });

  it('gets the route timeout: 504 timeout from a slow endpoint', async () => {
    await expectRouteTimeout(web.outboundPort, `GET /slow HTTP/1.1\r\nHost: slow\r\n${H2C}\r\n`);
  });

  it('gets retries: a service of [dead port, live app] answers 200 every time', async () => {
    for (let i = 0; i < 6; i++) {
      const client = new RawClient(web.outboundPort);
      client.write(`GET /try-${i} HTTP/1.1\r\nHost: flaky\r\n${H2C}\r\n`);
      const res = await client.response();
      expect(res.status, `${i}: ${res.head}\n${res.body}`).toBe(200);
      client.destroy();
    }
  });
});

describe('a WebSocket upgrade whose endpoint never answers', () => {
  const procs = new Processes();
  const servers: Server[] = [];
  const held: Socket[] = [];
  let web: SpawnedSidecar;
  let webApp: TestUpstream;

  /** Accepts connections, reads the request, never answers. */
  async function silentServer(): Promise<number> {
    const server = createServer((socket) => {
      held.push(socket);
      socket.on('error', () => {});
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return (server.address() as AddressInfo).port;
  }

  beforeAll(async () => {
    const [a, b] = [await silentServer(), await silentServer()];
    const [dead] = (await freePorts(1)) as [number];
    webApp = await startUpstream(echoHandler('web'));
    const at = (port: number) => ({ address: '127.0.0.1', port, labels: { version: 'v1' } });
    const outlierDetection = { consecutiveErrors: 1, baseEjectionTime: '30s', maxEjectionPercent: 50 };
    const config = writeTempConfig({
      version: '1',
      services: {
        stuck: { timeout: '1s', outlierDetection, endpoints: [at(a), at(b)] },
        // Round-robin: the two upgrades below try both endpoints (least-request's random pick
        // among idle ones sent both to the live one in about one run in four).
        gone: { lb: 'round-robin', outlierDetection, endpoints: [at(dead), at(webApp.port)] },
      },
    });
    web = await procs.sidecar({ service: 'web', appPort: webApp.port, config });
  });

  afterAll(async () => {
    await procs.killAll();
    for (const s of held) s.destroy();
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    await webApp.close();
  });

  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') console.log(`--- web ---\n${web?.output()}`);
  });

  it('gets 504 timeout at the route timeout and counts the endpoint as failing', async () => {
    for (let i = 0; i < 2; i++) await expectRouteTimeout(web.outboundPort, `GET /chat HTTP/1.1\r\nHost: stuck\r\n${WS}\r\n`);
    const s = await scrape(web);
    expect(metric(s, 'skein_requests_total', { direction: 'outbound', destination: 'stuck', code: '504' })).toBe(2);
    expect(metric(s, 'skein_endpoints', { destination: 'stuck', subset: '*', state: 'ejected' })).toBe(1);
  });

  it('counts a connect failure to the endpoint for outlier detection', async () => {
    for (let i = 0; i < 2; i++) {
      const client = new RawClient(web.outboundPort);
      client.write(`GET /chat HTTP/1.1\r\nHost: gone\r\n${WS}\r\n`);
      await client.response(5000);
      client.destroy();
    }
    expect(metric(await scrape(web), 'skein_endpoints', { destination: 'gone', subset: '*', state: 'ejected' })).toBe(1);
  });
});

describe('a WebSocket upgrade takes its route\'s fault and its subset\'s circuit breaker, as a request does', () => {
  const procs = new Processes();
  let web: SpawnedSidecar;
  let app: TestUpstream;
  let flaky: TestUpstream;
  /** flaky answers upgrades 500 while set, 101 after. */
  let failing = true;
  /** The targets of the upgrades that reached each app (its `requests` records plain requests only). */
  const upgraded: { app: string[]; flaky: string[] } = { app: [], flaky: [] };

  beforeAll(async () => {
    app = await startUpstream(echoHandler('ws'));
    acceptUpgrades(app);
    app.server.on('upgrade', (req) => upgraded.app.push(req.url ?? ''));
    flaky = await startUpstream(echoHandler('flaky'));
    flaky.server.on('upgrade', (req, socket) => {
      upgraded.flaky.push(req.url ?? '');
      if (failing) socket.end('HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n');
      else {
        const accept = createHash('sha1').update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
        socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
      }
    });
    const at = (port: number) => ({ address: '127.0.0.1', port, labels: { version: 'v1' } });
    const config = writeTempConfig({
      version: '1',
      services: {
        ws: { endpoints: [at(app.port)] },
        flaky: { retries: { attempts: 0 }, circuitBreaker: { volumeThreshold: 3, errorThresholdPercentage: 50, resetTimeout: '1s' }, endpoints: [at(flaky.port)] },
      },
      routes: {
        ws: [
          { name: 'abort', match: { pathPrefix: '/abort' }, split: { v1: 100 }, fault: { abort: { percent: 100, status: 503 } } },
          { name: 'slow', match: { pathPrefix: '/slow' }, split: { v1: 100 }, fault: { delay: { percent: 100, duration: '700ms' } } },
          { name: 'rest', match: { pathPrefix: '/' }, split: { v1: 100 } },
        ],
      },
    });
    web = await procs.sidecar({ service: 'web', appPort: app.port, config });
  });

  afterAll(async () => {
    await procs.killAll();
    await Promise.all([app?.close(), flaky?.close()]);
  });

  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') console.log(`--- web ---\n${web?.output()}`);
  });

  /** The upgrade's answer head on a new connection, how long it took, and the client (open for a tunnel). */
  async function upgrade(host: string, path: string): Promise<{ status: number; head: string; ms: number; client: RawClient }> {
    const client = new RawClient(web.outboundPort);
    const started = Date.now();
    client.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\n${WS}\r\n`);
    const text = await client.until(/\r\n\r\n/);
    return { status: Number(text.slice(9, 12)), head: text.slice(0, text.indexOf('\r\n\r\n')), ms: Date.now() - started, client };
  }

  it('an abort answers for the endpoint, which never sees the upgrade', async () => {
    const seen = upgraded.app.length;
    const aborted = await upgrade('ws', '/abort');
    expect(aborted.status, aborted.head).toBe(503);
    expect(aborted.head).toMatch(/\r\nx-skein-reason: fault-injected/i);
    aborted.client.destroy();
    // Another route's upgrade still opens a tunnel, and only it reached the app.
    const open = await upgrade('ws', '/chat');
    expect(open.status, open.head).toBe(101);
    open.client.destroy();
    expect(upgraded.app.slice(seen)).toEqual(['/chat']);
  });

  it('a delay holds the handshake back by its duration', async () => {
    const delayed = await upgrade('ws', '/slow');
    expect(delayed.status, delayed.head).toBe(101);
    expect(delayed.ms).toBeGreaterThanOrEqual(650);
    delayed.client.destroy();
  });

  it('a client gone during the delay is counted gone, and no upgrade goes out', async () => {
    const seen = upgraded.app.length;
    const gone = new RawClient(web.outboundPort);
    await gone.send(`GET /slow/gone HTTP/1.1\r\nHost: ws\r\n${WS}\r\n`);
    gone.destroy();
    await waitUntil(async () => metric(await scrape(web), 'skein_requests_total', { direction: 'outbound', destination: 'ws', code: '499' }) === 1, { timeoutMs: 5000, what: 'the 499' });
    // An upgrade delayed after it ends after it: by then the first one's delay was over too.
    const later = await upgrade('ws', '/slow/later');
    expect(later.status, later.head).toBe(101);
    later.client.destroy();
    expect(upgraded.app.slice(seen)).toEqual(['/slow/later']);
  });

  it('an open circuit answers circuit-open without touching the endpoint; an upgrade answered 101 closes it as the half-open trial', async () => {
    for (let i = 0; i < 3; i++) {
      const failed = await upgrade('flaky', '/live');
      expect(failed.status, failed.head).toBe(500);
      failed.client.destroy();
    }
    const refused = await upgrade('flaky', '/live');
    expect(refused.status, refused.head).toBe(503);
    expect(refused.head).toMatch(/\r\nx-skein-reason: circuit-open/i);
    refused.client.destroy();
    expect(upgraded.flaky).toEqual(['/live', '/live', '/live']);
    expect(metric(await scrape(web), 'skein_circuit_state', { destination: 'flaky' })).toBe(1);

    failing = false;
    let trial: Awaited<ReturnType<typeof upgrade>> | undefined;
    await waitUntil(
      async () => {
        trial?.client.destroy();
        trial = await upgrade('flaky', '/live');
        return trial.status === 101;
      },
      { timeoutMs: 5000, what: 'the half-open trial' },
    );
    // The tunnel is still open, yet the circuit closed at its answer.
    expect(trial!.client.closed).toBe(false);
    expect(metric(await scrape(web), 'skein_circuit_state', { destination: 'flaky' })).toBe(0);
    const next = await upgrade('flaky', '/live');
    expect(next.status, next.head).toBe(101);
    next.client.destroy();
    trial!.client.destroy();
  });
});

describe('a WebSocket upgrade whose client leaves before the endpoint\'s 101', () => {
  /** The endpoint answers each upgrade this long after it came: long past the checks below. */
  const ANSWER_AFTER_MS = 3000;
  /** How soon a client's leaving must be seen. */
  const PROMPTLY_MS = 1500;
  /** What the endpoint saw of one upgrade: the bytes before its 101 and after it, and its connection's end. */
  interface SeenUpgrade {
    readonly url: string;
    before: string;
    after: string;
    answered: boolean;
    closed: boolean;
  }
  const procs = new Processes();
  const seen: SeenUpgrade[] = [];
  let late: TestUpstream;
  let web: SpawnedSidecar;

  beforeAll(async () => {
    late = await startUpstream(echoHandler('late'));
    late.server.on('upgrade', (req, socket: Socket, head: Buffer) => {
      const upgrade: SeenUpgrade = { url: req.url ?? '', before: head.toString('latin1'), after: '', answered: false, closed: false };
      seen.push(upgrade);
      socket.on('error', () => {});
      // node:http's sockets are half-open: the sidecar's FIN shows as an 'end'.
      socket.on('end', () => (upgrade.closed = true));
      socket.on('close', () => (upgrade.closed = true));
      socket.on('data', (d: Buffer) => {
        if (!upgrade.answered) upgrade.before += d.toString('latin1');
        else {
          upgrade.after += d.toString('latin1');
          socket.write(d.toString('latin1').toUpperCase());
        }
      });
      setTimeout(() => {
        if (socket.destroyed) return;
        upgrade.answered = true;
        socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
      }, ANSWER_AFTER_MS).unref();
    });
    const config = writeTempConfig({
      version: '1',
      services: { late: { timeout: '10s', endpoints: [{ address: '127.0.0.1', port: late.port, labels: { version: 'v1' } }] } },
      routes: {
        late: [
          { name: 'delayed', match: { pathPrefix: '/delayed' }, split: { v1: 100 }, fault: { delay: { percent: 100, duration: '2s' } } },
          { name: 'rest', match: { pathPrefix: '/' }, split: { v1: 100 } },
        ],
      },
    });
    // The app is the late endpoint too, so the inbound hop's upgrades meet it.
    web = await procs.sidecar({ service: 'web', appPort: late.port, config });
  });

  afterAll(async () => {
    await procs.killAll();
    await late?.close();
  });

  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') console.log(`--- web ---\n${web?.output()}`);
  });

  const hops = [
    { hop: 'outbound', port: () => web.outboundPort, host: 'late', counted: { direction: 'outbound', destination: 'late' } },
    { hop: 'inbound', port: () => web.inboundPort, host: 'web', counted: { direction: 'inbound', destination: 'web' } },
  ];

  /** Sends the upgrade request for `path`, then (once the endpoint has it, the sidecar having long handed the connection over) `early`, if any. */
  async function upgradeThenSend(port: number, host: string, path: string, early: string): Promise<{ client: RawClient; upgrade: SeenUpgrade }> {
    const client = new RawClient(port);
    await client.send(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\n${WS}\r\n`);
    const upgrade = await waitUntil(() => seen.find((u) => u.url === path), { timeoutMs: 5000, what: `${path} at the endpoint` });
    if (early !== '') await client.send(early);
    return { client, upgrade };
  }

  /** `client` leaves; its upgrade must be counted 499 (and never 101), and the endpoint's connection closed, within PROMPTLY_MS. */
  async function expectSeenLeaving(client: RawClient, upgrade: SeenUpgrade, counted: Record<string, string>): Promise<void> {
    const count = async (code: string): Promise<number> => metric(await scrape(web), 'skein_requests_total', { ...counted, code });
    const [gone, switched] = [await count('499'), await count('101')];
    client.destroy();
    await waitUntil(async () => upgrade.closed && (await count('499')) === gone + 1, { timeoutMs: PROMPTLY_MS, intervalMs: 50, what: 'the client counted gone and the endpoint\'s connection closed' });
    expect(upgrade.answered).toBe(false);
    expect(upgrade.before).toBe('');
    expect(await count('101')).toBe(switched);
  }

  for (const { hop, port, host, counted } of hops) {
    describe(`on the ${hop} hop`, () => {
      it('a client that leaves without sending more is counted gone at once, and the endpoint\'s connection closes', async () => {
        const { client, upgrade } = await upgradeThenSend(port(), host, `/${hop}/quiet`, '');
        await expectSeenLeaving(client, upgrade, counted);
      });

      it('so is one that sent bytes past its request first, which never reach the endpoint', async () => {
        const { client, upgrade } = await upgradeThenSend(port(), host, `/${hop}/early`, 'EARLY BYTES');
        await expectSeenLeaving(client, upgrade, counted);
      });

      it('one that stays has those bytes delivered after the 101', async () => {
        const { client, upgrade } = await upgradeThenSend(port(), host, `/${hop}/stays`, 'early bytes');
        expect(await client.until(/^HTTP\/1.1 101 [^]*\r\n\r\nEARLY BYTES$/, ANSWER_AFTER_MS + 2000)).toMatch(/^HTTP\/1.1 101 /);
        expect(upgrade.before).toBe('');
        expect(upgrade.after).toBe('early bytes');
        client.destroy();
      });
    });
  }

  it('a client that sent bytes past its request and leaves during its route\'s fault delay is counted gone then, and no upgrade goes out', async () => {
    const count = async (): Promise<number> => metric(await scrape(web), 'skein_requests_total', { direction: 'outbound', destination: 'late', code: '499' });
    const gone = await count();
    const client = new RawClient(web.outboundPort);
    await client.send(`GET /delayed/early HTTP/1.1\r\nHost: late\r\n${WS}\r\n`);
    // Past the head's parse: the sidecar holds the connection through the delay by now.
    await new Promise((r) => setTimeout(r, 300));
    await client.send('EARLY BYTES');
    client.destroy();
    await waitUntil(async () => (await count()) === gone + 1, { timeoutMs: 1000, intervalMs: 50, what: 'the 499' });
    // Once the delay is over, the upgrade still does not go out.
    await new Promise((r) => setTimeout(r, 2000));
    expect(seen.filter((u) => u.url === '/delayed/early')).toEqual([]);
  });

  it('one that stays through the delay has the bytes it sent during it delivered after the 101', async () => {
    const client = new RawClient(web.outboundPort);
    await client.send(`GET /delayed/stays HTTP/1.1\r\nHost: late\r\n${WS}\r\n`);
    await new Promise((r) => setTimeout(r, 300));
    await client.send('early bytes');
    expect(await client.until(/^HTTP\/1.1 101 [^]*\r\n\r\nEARLY BYTES$/, 2000 + ANSWER_AFTER_MS + 2000)).toMatch(/^HTTP\/1.1 101 /);
    const upgrade = seen.find((u) => u.url === '/delayed/stays')!;
    expect(upgrade.before).toBe('');
    expect(upgrade.after).toBe('early bytes');
    client.destroy();
  });
});

describe('a WebSocket upgrade in flight when the sidecar\'s drain timeout runs out', () => {
  const procs = new Processes();
  let app: TestUpstream;
  let webApp: TestUpstream;
  /** The app's side of each upgrade it was sent, by path. */
  const upgrades = new Map<string, Socket>();

  beforeAll(async () => {
    webApp = await startUpstream(echoHandler('web'));
    app = await startUpstream(echoHandler('catalog'));
    app.server.on('upgrade', (req, socket: Socket) => {
      upgrades.set(req.url ?? '', socket);
      socket.on('error', () => {});
      // /hold is never answered (read, so the sidecar's FIN is seen); /tunnel is, and then echoes.
      if (req.url !== '/tunnel') return void socket.resume();
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
      socket.pipe(socket);
    });
  });

  afterAll(async () => {
    await procs.killAll();
    for (const s of upgrades.values()) s.destroy();
    await Promise.all([app.close(), webApp.close()]);
  });

  it('is answered 503 retries-exhausted while its endpoint has not answered (the endpoint\'s connection closed) or while in its fault\'s delay; an open tunnel is cut', async () => {
    const config = writeTempConfig({
      version: '1',
      services: { catalog: { timeout: '30s', endpoints: [{ address: '127.0.0.1', port: app.port, labels: { version: 'v1' } }] } },
      // /delayed is still in its fault's delay when the drain timeout runs out: no endpoint has it yet.
      routes: { catalog: [{ match: { pathPrefix: '/delayed' }, fault: { delay: { percent: 100, duration: '30s' } } }, { match: { pathPrefix: '/' } }] },
    });
    const sc = await procs.sidecar({ service: 'web', appPort: webApp.port, config, drainTimeout: '1s' });
    const tunnel = new RawClient(sc.outboundPort);
    tunnel.write(`GET /tunnel HTTP/1.1\r\nHost: catalog\r\n${WS}\r\n`);
    await tunnel.until(/^HTTP\/1.1 101 [^]*\r\n\r\n$/);
    const held = new RawClient(sc.outboundPort);
    await held.send(`GET /hold HTTP/1.1\r\nHost: catalog\r\n${WS}\r\n`);
    const hold = await waitUntil(() => upgrades.get('/hold'), { timeoutMs: 5000, what: 'the upgrade at the app' });
    const delayed = new RawClient(sc.outboundPort);
    await delayed.send(`GET /delayed HTTP/1.1\r\nHost: catalog\r\n${WS}\r\n`);
    // Read within the drain's 1 s, if not before the signal: the listeners take requests until it ends.
    sc.kill('SIGTERM');
    const res = await held.response(5000);
    expect(res.status, sc.output()).toBe(503);
    expect(res.head).toMatch(/\r\nx-skein-reason: retries-exhausted\r\n/);
    expect(res.head).toMatch(/\r\nconnection: close\r\n/);
    expect(res.body).toBe('sidecar shutting down: its drain timeout (1s) ran out before catalog answered\n');
    const delayedRes = await delayed.response(5000);
    expect(delayedRes.status, sc.output()).toBe(503);
    expect(delayedRes.head).toMatch(/\r\nx-skein-reason: retries-exhausted\r\n/);
    expect(delayedRes.body).toBe('sidecar shutting down: its drain timeout (1s) ran out before catalog answered\n');
    expect(upgrades.has('/delayed')).toBe(false);
    await waitUntil(() => hold.destroyed || hold.readableEnded, { timeoutMs: 2000, what: 'the app\'s side of the held upgrade to close' });
    // The tunnel gets nothing but its end.
    expect(await tunnel.rest(2000)).toBe('');
    expect(tunnel.closed).toBe(true);
    expect((await sc.exited).code, sc.output()).toBe(0);
    expect(sc.output()).toMatch(/"inFlight":3,"answered":2,"msg":"drain timeout reached with requests in flight/);
  });
});
