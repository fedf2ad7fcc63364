/**
 * Retries, retry budget, circuit breaker, outlier ejection and timeouts, end to end: a real
 * `web` sidecar (static config) in front of real test upstreams that flap, fail or stall.
 */
import { request, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect as connectH2, createServer as createH2Server } from 'node:http2';
import { connect, type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { ServicePolicyInput } from '../../common/config/schema.js';
import { echoHandler, freePorts, makeCa, makeLeaf, Processes, startUpstream, tempDir, waitUntil, writeIdentity, writeTempConfig, type Handler, type SpawnedSidecar, type TestUpstream } from '../support/index.js';
import { endpointOf, metric, scrape, send, startOutbound, type Outbound, type Reply } from './resilience-fixture.js';

const procs = new Processes();
const upstreams: TestUpstream[] = [];
/** Closes servers other than TestUpstreams (HTTP/2 endpoints). */
const closers: (() => Promise<void>)[] = [];

afterEach(async () => {
  await procs.killAll();
  await Promise.all([...upstreams.splice(0).map((u) => u.close()), ...closers.splice(0).map((close) => close())]);
});

async function upstream(handler: Handler): Promise<TestUpstream> {
  const u = await startUpstream(handler);
  upstreams.push(u);
  return u;
}

function catalog(policy: ServicePolicyInput, ...endpoints: TestUpstream[]) {
  return { version: '1', services: { catalog: { ...policy, endpoints: endpoints.map((e) => endpointOf(e)) } } };
}

/** Answers `N bytes` once it has read the whole body. */
const countBody: Handler = (req, res) => {
  let bytes = 0;
  req.on('data', (c: Buffer) => (bytes += c.length));
  req.on('end', () => res.end(`${bytes} bytes`));
};

/** A chunked POST whose first part goes out now and the rest at `end()` (which returns when); `reply` comes with the time it ended. */
function chunkedUpload(url: string): { reply: Promise<Reply & { at: number }>; end(): number } {
  const started = performance.now();
  const req = request(url, { method: 'POST', headers: { host: 'catalog', 'transfer-encoding': 'chunked' }, agent: false });
  const reply = new Promise<Reply & { at: number }>((resolve, reject) => {
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const at = performance.now();
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString(), ms: at - started, at });
      });
    });
    req.on('error', reject);
  });
  req.write('first part');
  return {
    reply,
    end: () => {
      req.end('last part');
      return performance.now();
    },
  };
}

const fail = (status: number): Handler => (_req, res) => {
  res.writeHead(status, { 'content-type': 'text/plain' });
  res.end(`upstream says ${status}`);
};

describe('retries', () => {
  it('turn a flapping upstream into 200s with x-skein-attempt counting tries, and never replay a POST that reached it', async () => {
    let n = 0;
    const ok = echoHandler('catalog');
    const flapping = await upstream((req, res) => (++n % 2 === 1 ? fail(503)(req, res) : ok(req, res)));
    const web = await startOutbound(procs, catalog({ retries: { attempts: 2, backoff: { base: '1ms', max: '5ms' } } }, flapping));

    for (let i = 0; i < 10; i++) {
      const r = await web.call(`/items/${i}`);
      expect(r.status, r.body).toBe(200);
    }
    expect(flapping.requests.length).toBe(20);
    expect(flapping.requests.map((r) => r.headers['x-skein-attempt'])).toEqual(Array.from({ length: 20 }, (_, i) => String((i % 2) + 1)));

    const post = await web.call('/orders', { method: 'POST', body: '{"x":1}', headers: { 'content-type': 'application/json' } });
    expect(post.status).toBe(503);
    expect(post.headers['x-skein-reason']).toBeUndefined(); // the upstream's own answer, passed through
    expect(flapping.requests.filter((r) => r.method === 'POST').length).toBe(1);

    const s = await scrape(web.sidecar);
    expect(metric(s, 'skein_retries_total', { destination: 'catalog', reason: 'gateway-error' })).toBe(10);
  });

  it('never replay a method not defined idempotent that reached the upstream (WebDAV\'s LOCK and MKCOL), as a POST is not, while a PUT is', async () => {
    const failing = await upstream(fail(503));
    const web = await startOutbound(procs, catalog({ retries: { attempts: 2, backoff: { base: '1ms', max: '5ms' } } }, failing));
    for (const method of ['LOCK', 'MKCOL', 'PUT']) {
      const r = await web.call('/dav/x', { method, body: 'ab' });
      expect(r.status, method).toBe(503);
    }
    const tries = (method: string) => failing.requests.filter((r) => r.method === method).map((r) => r.headers['x-skein-attempt']);
    expect(tries('LOCK')).toEqual(['1']);
    expect(tries('MKCOL')).toEqual(['1']);
    expect(tries('PUT')).toEqual(['1', '2', '3']);
  });

  it('retry an HTTP/2 caller\'s PUT with a declared body up to 64 KiB, as an HTTP/1.1 caller\'s, its body whole each time', async () => {
    let n = 0;
    const flapping = await upstream((req, res) => (++n === 1 ? fail(503)(req, res) : countBody(req, res)));
    const web = await startOutbound(procs, catalog({ retries: { attempts: 2, backoff: { base: '1ms', max: '5ms' } } }, flapping));
    const session = connectH2(`http://127.0.0.1:${web.sidecar.outboundPort}`);
    try {
      const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const stream = session.request({ ':method': 'PUT', ':path': '/items/1', ':authority': 'catalog', 'content-length': '100' });
        const chunks: Buffer[] = [];
        let status = 0;
        stream.on('response', (head) => (status = Number(head[':status'])));
        stream.on('data', (chunk: Buffer) => chunks.push(chunk));
        stream.on('end', () => resolve({ status, body: Buffer.concat(chunks).toString() }));
        stream.on('error', reject);
        stream.end(Buffer.alloc(100, 97));
      });
      expect(answer).toEqual({ status: 200, body: '100 bytes' });
      expect(flapping.requests.map((r) => r.headers['x-skein-attempt'])).toEqual(['1', '2']);
    } finally {
      session.destroy();
    }
  });

  it('retry a POST whose upstream cannot be reached at all (connect failure)', async () => {
    const good = await upstream(echoHandler('catalog'));
    const closed = await upstream(fail(500));
    await closed.close(); // its port now refuses connections
    upstreams.splice(upstreams.indexOf(closed), 1);
    const web = await startOutbound(procs, catalog({ lb: 'round-robin', retries: { attempts: 2, backoff: { base: '1ms', max: '2ms' } } }, closed, good));
    for (let i = 0; i < 4; i++) {
      const r = await web.call('/orders', { method: 'POST', body: 'x' });
      expect(r.status, r.body).toBe(200);
    }
    expect(good.requests.length).toBe(4);
    expect(metric(await scrape(web.sidecar), 'skein_retries_total', { destination: 'catalog', reason: 'connect-failure' })).toBeGreaterThan(0);
  });

  it('retry a streamed POST (chunked, or a Content-Length past the 64 KiB replay buffer) whose first endpoint refuses connections: none of its body was read', async () => {
    const good = await upstream(countBody);
    const closed = await upstream(fail(500));
    await closed.close(); // its port now refuses connections
    upstreams.splice(upstreams.indexOf(closed), 1);
    const web = await startOutbound(procs, catalog({ lb: 'round-robin', retries: { attempts: 2, on: ['connect-failure'], backoff: { base: '1ms', max: '2ms' } } }, closed, good));
    for (let i = 0; i < 4; i++) {
      const chunked = await web.call('/upload', { method: 'POST', body: 'c'.repeat(5000), headers: { 'transfer-encoding': 'chunked' } });
      expect(chunked.status, chunked.body).toBe(200);
      expect(chunked.body).toBe('5000 bytes');
      const declared = await web.call('/upload', { method: 'POST', body: 'd'.repeat(100_000) });
      expect(declared.status, declared.body).toBe(200);
      expect(declared.body).toBe('100000 bytes');
    }
    expect(good.requests.length).toBe(8);
    expect(metric(await scrape(web.sidecar), 'skein_retries_total', { destination: 'catalog', reason: 'connect-failure' })).toBeGreaterThanOrEqual(4);
  });

  it('never retry a streamed body once an attempt has begun to read it, while a buffered one is replayed', async () => {
    // Reads the whole request, then resets: a reset is retried for a PUT, if its body can be sent again.
    const resetter = await upstream((req, res) => {
      req.resume();
      req.on('end', () => res.socket?.destroy());
    });
    const web = await startOutbound(procs, catalog({ retries: { attempts: 2, on: ['reset'], backoff: { base: '1ms', max: '2ms' } } }, resetter));
    const streamed = await web.call('/upload', { method: 'PUT', body: 's'.repeat(100_000) });
    expect(streamed.status, streamed.body).toBe(503);
    expect(streamed.headers['x-skein-reason']).toBe('retries-exhausted');
    expect(resetter.requests.length).toBe(1);
    const buffered = await web.call('/upload', { method: 'PUT', body: 'b'.repeat(1000) });
    expect(buffered.status, buffered.body).toBe(503);
    expect(resetter.requests.length).toBe(4);
  });

  it("share the destination's budget, which counts the requests of its rules that do not retry too (as Linkerd's counts all of a service's)", async () => {
    const up = await upstream((req, res) => (req.url!.startsWith('/fail') ? fail(503)(req, res) : res.end('ok')));
    const web = await startOutbound(procs, {
      version: '1',
      services: { catalog: { retries: { attempts: 0, budget: { ratio: 0.5, minPerSecond: 0 } }, circuitBreaker: { volumeThreshold: 1_000_000 }, endpoints: [endpointOf(up)] } },
      routes: { catalog: [{ match: { pathPrefix: '/fail' }, retries: { attempts: 4, backoff: { base: '1ms', max: '2ms' } } }, { match: { pathPrefix: '/' } }] },
    });
    for (let i = 0; i < 20; i++) expect((await web.call('/ok')).status).toBe(200);
    // 21 requests to catalog allow 10.5 retries: all four of this one's. Counting only the
    // retrying rule's one request allowed half a retry, so none.
    const r = await web.call('/fail');
    expect(r.status).toBe(503);
    expect(up.requests.filter((q) => q.url.startsWith('/fail'))).toHaveLength(5);
    expect(metric(await scrape(web.sidecar), 'skein_retry_budget_exhausted_total', { destination: 'catalog' })).toBe(0);
  });

  it('are capped by the retry budget (20% of requests + 10/s) under a 100%-failing upstream', async () => {
    const down = await upstream(fail(503));
    // The budget's window covers the sidecar's whole life (up to 10 s), idle seconds included.
    const started = Date.now();
    const web = await startOutbound(
      procs,
      catalog(
        {
          retries: { attempts: 2, backoff: { base: '1ms', max: '2ms' }, budget: { ratio: 0.2, minPerSecond: 10 } },
          circuitBreaker: { volumeThreshold: 1_000_000 },
        },
        down,
      ),
    );
    const requests = 300;
    let next = 0;
    const worker = async () => {
      while (next < requests) {
        next++;
        const r = await web.call('/items');
        expect(r.status).toBe(503);
      }
    };
    await Promise.all(Array.from({ length: 10 }, worker));
    const elapsed = Math.ceil((Date.now() - started) / 1000);
    // The budget is a sliding 10 s window: a run longer than one window (a loaded machine) may
    // spend one more window's allowance per window it spans, and no more.
    const windows = Math.max(1, Math.ceil((elapsed + 1) / 10));
    const seconds = Math.min(10, elapsed);

    const s = await scrape(web.sidecar);
    const retries = metric(s, 'skein_retries_total', { destination: 'catalog' });
    const exhausted = metric(s, 'skein_retry_budget_exhausted_total', { destination: 'catalog' });
    // Without a budget every request would be tried 3 times: 600 retries.
    expect(retries).toBeLessThanOrEqual(windows === 1 ? 0.2 * requests + 10 * (seconds + 1) : windows * (0.2 * requests + 10 * 10));
    expect(retries).toBeGreaterThanOrEqual(0.2 * requests);
    expect(exhausted).toBeGreaterThan(0);
    expect(down.requests.length).toBe(requests + retries);
    expect(metric(s, 'skein_requests_total', { direction: 'outbound', destination: 'catalog', code: '503' })).toBe(requests);
  });
});

describe('retries through a peer sidecar', () => {
  it('never replay a POST whose app reset after reading it, retry a GET reset, and hand the app the caller\'s try number', async () => {
    let flaky = 0;
    const app = await upstream((req, res) => {
      if (req.url === '/pay' || req.url === '/reset') {
        // Read the whole request, then reset: the app got it, it just never answered.
        req.resume();
        req.on('end', () => req.socket.destroy());
        return;
      }
      if (req.url === '/flaky' && ++flaky <= 2) return fail(503)(req, res);
      echoHandler('catalog')(req, res);
    });
    const [inboundPort] = (await freePorts(1)) as [number];
    const snapshot = {
      version: '1',
      services: { catalog: { retries: { attempts: 2, backoff: { base: '1ms', max: '2ms' } }, endpoints: [{ address: '127.0.0.1', port: inboundPort, labels: { version: 'v1' } }] } },
    };
    const web = await startOutbound(procs, snapshot);
    await procs.sidecar({ service: 'catalog', appPort: app.port, config: writeTempConfig(snapshot), inboundPort });
    const tries = (url: string) => app.requests.filter((r) => r.url === url);

    const post = await web.call('/pay', { method: 'POST', body: 'order=1' });
    expect(post.status, post.body).toBe(503);
    expect(post.headers['x-skein-reason']).toBe('retries-exhausted');
    expect(tries('/pay').length).toBe(1);

    const reset = await web.call('/reset');
    expect(reset.status, reset.body).toBe(503);
    expect(reset.headers['x-skein-reason']).toBe('retries-exhausted');
    expect(tries('/reset').map((r) => r.headers['x-skein-attempt'])).toEqual(['1', '2', '3']);

    const ok = await web.call('/flaky');
    expect(ok.status, ok.body).toBe(200);
    expect(tries('/flaky').map((r) => r.headers['x-skein-attempt'])).toEqual(['1', '2', '3']);
  });
});

describe('a retryable status', () => {
  /** What the endpoint saw: each try's number, and whether the first try's stream or connection closed. */
  const seen = { attempts: [] as string[], firstClosed: false };
  const policy = { timeout: '3s', retries: { attempts: 2, perTryTimeout: '1s', backoff: { base: '1ms', max: '2ms' } } };
  // The first try gets a 503 head and the start of a body whose rest never comes; later ones a 200.
  const slowFirst: Handler = (req, res) => {
    // A peer sidecar's health checks reach its app too.
    if (req.url !== '/items') return echoHandler('catalog')(req, res);
    const attempt = String(req.headers['x-skein-attempt']);
    seen.attempts.push(attempt);
    if (attempt !== '1') return echoHandler('catalog')(req, res);
    res.writeHead(503, { 'content-type': 'text/plain' });
    res.write('overloaded, and the rest of this answer is slow');
    res.on('close', () => (seen.firstClosed = true));
  };
  const h2SlowFirst = async (): Promise<number> => {
    const server = createH2Server();
    server.on('stream', (stream, headers) => {
      const attempt = String(headers['x-skein-attempt']);
      seen.attempts.push(attempt);
      if (attempt !== '1') return stream.respond({ ':status': 200 }, { endStream: true });
      stream.respond({ ':status': 503, 'content-type': 'text/plain' });
      stream.write('overloaded, and the rest of this answer is slow');
      stream.on('close', () => (seen.firstClosed = true));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    closers.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    return (server.address() as AddressInfo).port;
  };
  /** The `web` sidecar in front of catalog, whose first try answers that 503. */
  const setups: [string, () => Promise<SpawnedSidecar>][] = [
    ['from an HTTP/1.1 endpoint', async () => (await startOutbound(procs, catalog(policy, await upstream(slowFirst)))).sidecar],
    [
      'from a peer sidecar (mux)',
      async () => {
        const app = await upstream(slowFirst);
        const ca = makeCa();
        const dir = tempDir();
        const [inboundPort] = (await freePorts(1)) as [number];
        const config = writeTempConfig({ version: '1', services: { catalog: { ...policy, endpoints: [{ address: '127.0.0.1', port: inboundPort, labels: { version: 'v1' } }] } }, intentions: { defaultAction: 'allow' } }, dir);
        const id = (name: string) => writeIdentity(dir, name, makeLeaf(ca, name));
        await procs.sidecar({ service: 'catalog', appPort: app.port, config, inboundPort, identity: id('catalog') });
        return procs.sidecar({ service: 'web', appPort: app.port, config, identity: id('web') });
      },
    ],
    [
      'from an HTTP/2 endpoint',
      async () => {
        const port = await h2SlowFirst();
        const snapshot = { version: '1', services: { catalog: { ...policy, protocol: 'grpc' as const, endpoints: [{ address: '127.0.0.1', port, labels: { version: 'v1' } }] } } };
        return (await startOutbound(procs, snapshot)).sidecar;
      },
    ],
  ];

  it.each(setups)('%s is retried at once: its try is reset, not waited on to its per-try timeout, and its one retry counted once', async (_, setup) => {
    seen.attempts = [];
    seen.firstClosed = false;
    const web = await setup();
    const r = await send(`${web.outboundUrl}/items`, { headers: { host: 'catalog' } });
    expect(r.status, r.body).toBe(200);
    // Waiting for the 503's body would have held the retry until the per-try cut (1 s) or the deadline (3 s).
    expect(r.ms).toBeLessThan(800);
    expect(seen.attempts).toEqual(['1', '2']);
    // The first try's answer was not read to its end: its connection (or stream) is closed, not kept for another request.
    await waitUntil(() => seen.firstClosed, { timeoutMs: 5000, what: 'the first try to be closed' });
    const s = await scrape(web);
    expect(metric(s, 'skein_retries_total', { destination: 'catalog' })).toBe(1);
    expect(metric(s, 'skein_retries_total', { destination: 'catalog', reason: 'gateway-error' })).toBe(1);
  });
});

describe('streamed bodies over the mux', () => {
  it('retry a streamed POST whose first peer endpoint refuses connections (the TLS connection never opened, nothing was read)', async () => {
    const app = await upstream(countBody);
    const ca = makeCa();
    const dir = tempDir();
    const [liveIn, deadIn] = (await freePorts(2)) as [number, number];
    const config = writeTempConfig({
      version: '1',
      services: {
        catalog: {
          lb: 'round-robin',
          retries: { attempts: 2, on: ['connect-failure'], backoff: { base: '1ms', max: '2ms' } },
          endpoints: [deadIn, liveIn].map((port) => ({ address: '127.0.0.1', port, labels: { version: 'v1' } })),
        },
      },
      intentions: { defaultAction: 'allow' },
    }, dir);
    const id = (name: string) => writeIdentity(dir, name, makeLeaf(ca, name));
    await procs.sidecar({ service: 'catalog', appPort: app.port, config, inboundPort: liveIn, identity: id('catalog') });
    const web = await procs.sidecar({ service: 'web', appPort: app.port, config, identity: id('web') });
    for (let i = 0; i < 4; i++) {
      const chunked = await send(`${web.outboundUrl}/upload`, { method: 'POST', body: 'c'.repeat(5000), headers: { host: 'catalog', 'transfer-encoding': 'chunked' } });
      expect(chunked.status, chunked.body).toBe(200);
      expect(chunked.body).toBe('5000 bytes');
      const declared = await send(`${web.outboundUrl}/upload`, { method: 'POST', body: 'd'.repeat(100_000), headers: { host: 'catalog' } });
      expect(declared.status, declared.body).toBe(200);
      expect(declared.body).toBe('100000 bytes');
    }
    expect(app.requests.filter((r) => r.url === '/upload').length).toBe(8);
    expect(metric(await scrape(web), 'skein_retries_total', { destination: 'catalog', reason: 'connect-failure' })).toBeGreaterThanOrEqual(4);
  });
});

describe('circuit breaker', () => {
  it('opens after volumeThreshold failures, answers 503 circuit-open without calling the upstream, and recovers after resetTimeout', async () => {
    let failing = true;
    const ok = echoHandler('catalog');
    const flaky = await upstream((req, res) => (failing ? fail(503)(req, res) : ok(req, res)));
    const web = await startOutbound(
      procs,
      catalog({ retries: { attempts: 0 }, circuitBreaker: { volumeThreshold: 5, errorThresholdPercentage: 50, resetTimeout: '1s' } }, flaky),
    );

    for (let i = 0; i < 5; i++) expect((await web.call('/items')).status).toBe(503);
    const rejected = await web.call('/items');
    const openedAt = Date.now();
    expect(rejected.status).toBe(503);
    expect(rejected.headers['x-skein-reason']).toBe('circuit-open');
    expect((await web.call('/items')).headers['x-skein-reason']).toBe('circuit-open');
    expect(flaky.requests.length).toBe(5);

    let s = await scrape(web.sidecar);
    expect(metric(s, 'skein_circuit_state', { destination: 'catalog' })).toBe(1);
    expect(metric(s, 'skein_circuit_rejections_total', { destination: 'catalog' })).toBe(2);

    failing = false;
    await waitUntil(async () => (await web.call('/items')).status === 200, { timeoutMs: 5000, what: 'the circuit to close again' });
    expect(Date.now() - openedAt).toBeGreaterThanOrEqual(900);
    expect((await web.call('/items')).status).toBe(200);
    s = await scrape(web.sidecar);
    expect(metric(s, 'skein_circuit_state', { destination: 'catalog' })).toBe(0);
  });
  it('half-opens after resetTimeout, lets one trial through, and reopens when it fails', async () => {
    const down = await upstream(fail(503));
    const web = await startOutbound(
      procs,
      catalog({ retries: { attempts: 0 }, circuitBreaker: { volumeThreshold: 5, errorThresholdPercentage: 50, resetTimeout: '1s' } }, down),
    );
    for (let i = 0; i < 5; i++) await web.call('/items');
    expect((await web.call('/items')).headers['x-skein-reason']).toBe('circuit-open');
    // Poll until the half-open trial reaches the upstream...
    await waitUntil(async () => (await web.call('/items'), down.requests.length === 6), { timeoutMs: 5000, what: 'the half-open trial' });
    // ...which failed, so the circuit is open again and nothing else gets through.
    const after = await web.call('/items');
    expect(after.headers['x-skein-reason']).toBe('circuit-open');
    expect(down.requests.length).toBe(6);
    expect(metric(await scrape(web.sidecar), 'skein_circuit_state', { destination: 'catalog' })).toBe(1);
  });

  it('counts a caller that hangs up for nothing: it neither dilutes the failures nor closes a half-open circuit', async () => {
    let hungUp = 0;
    const hangs = await upstream((req, res) => {
      // /hang never answers; its caller gives up, and the sidecar then drops the attempt.
      if (req.url === '/hang') res.on('close', () => hungUp++);
      else fail(503)(req, res);
    });
    const web = await startOutbound(
      procs,
      catalog({ retries: { attempts: 0 }, circuitBreaker: { volumeThreshold: 2, errorThresholdPercentage: 50, resetTimeout: '1s' } }, hangs),
    );
    const hangUp = async (): Promise<void> => {
      const seen = hangs.requests.length;
      const socket = connect({ host: '127.0.0.1', port: web.sidecar.outboundPort });
      socket.on('error', () => undefined);
      socket.write('GET /hang HTTP/1.1\r\nhost: catalog\r\n\r\n');
      await waitUntil(() => hangs.requests.length > seen, { what: 'the request to reach the upstream' });
      const before = hungUp;
      socket.destroy();
      await waitUntil(() => hungUp > before, { what: 'the sidecar to drop the attempt' });
    };
    const circuit = async (): Promise<number> => metric(await scrape(web.sidecar), 'skein_circuit_state', { destination: 'catalog' });

    // Three callers hang up, then two calls fail: 2 failures of 2 outcomes, not 2 of 5 tries.
    for (let i = 0; i < 3; i++) await hangUp();
    for (let i = 0; i < 2; i++) expect((await web.call('/items')).headers['x-skein-reason']).toBeUndefined();
    expect((await web.call('/items')).headers['x-skein-reason']).toBe('circuit-open');
    expect(await circuit()).toBe(1);

    // The half-open trial's caller hangs up: that says nothing either, so the circuit stays half-open...
    await waitUntil(async () => (await circuit()) === 2, { timeoutMs: 5000, what: 'the circuit to half-open' });
    await hangUp();
    expect(await circuit()).toBe(2);
    // ...and the next call is the trial, whose failure opens the circuit again.
    expect((await web.call('/items')).headers['x-skein-reason']).toBeUndefined();
    expect((await web.call('/items')).headers['x-skein-reason']).toBe('circuit-open');
    expect(await circuit()).toBe(1);
  });
});

describe('circuit breaker after it closes', () => {
  const policy = (volumeThreshold: number) => ({ timeout: '0s', retries: { attempts: 0 }, circuitBreaker: { volumeThreshold, errorThresholdPercentage: 50, resetTimeout: '1s' }, outlierDetection: { consecutiveErrors: 1000 } });
  /** Opens the circuit to `flaky` (failing until `recover` is called), then waits for it to half-open. */
  const halfOpenCircuit = async (flaky: TestUpstream, recover: () => void): Promise<{ web: Outbound; circuit: () => Promise<number> }> => {
    const web = await startOutbound(procs, catalog(policy(3), flaky));
    const circuit = async (): Promise<number> => metric(await scrape(web.sidecar), 'skein_circuit_state', { destination: 'catalog' });
    for (let i = 0; i < 3; i++) await web.call('/items');
    expect((await web.call('/items')).headers['x-skein-reason']).toBe('circuit-open');
    recover();
    await waitUntil(async () => (await circuit()) === 2, { timeoutMs: 5000, what: 'the circuit to half-open' });
    return { web, circuit };
  };
  const breakerOf = async (web: Outbound): Promise<{ state: string; active: number }> => {
    const clusters = (await (await fetch(`${web.sidecar.adminUrl}/clusters`)).json()) as { catalog: { subsets: Record<string, { breaker: { state: string; active: number } }> } };
    return clusters.catalog.subsets['*']!.breaker;
  };

  it('closes as soon as the half-open trial answers 200, while its body still streams (route timeout 0s)', async () => {
    let failing = true;
    const streams: ServerResponse[] = [];
    const ok = echoHandler('catalog');
    const flaky = await upstream((req, res) => {
      if (req.url === '/events') {
        // An event stream that lasts until the test ends it.
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write('data: hello\n\n');
        streams.push(res);
      } else if (failing) fail(503)(req, res);
      else ok(req, res);
    });
    const web = await startOutbound(procs, catalog(policy(3), flaky));
    for (let i = 0; i < 3; i++) await web.call('/items');
    expect((await web.call('/items')).headers['x-skein-reason']).toBe('circuit-open');
    failing = false;
    await waitUntil(async () => metric(await scrape(web.sidecar), 'skein_circuit_state', { destination: 'catalog' }) === 2, { timeoutMs: 5000, what: 'the circuit to half-open' });

    // The trial is the event stream: its head closes the circuit, its body goes on.
    const events = request(`${web.sidecar.outboundUrl}/events`, { headers: { host: 'catalog' }, agent: false });
    const head = await new Promise<IncomingMessage>((resolve, reject) => events.on('response', resolve).on('error', reject).end());
    expect(head.statusCode).toBe(200);
    const item = await web.call('/items');
    expect(item.status).toBe(200);
    expect(item.headers['x-skein-reason']).toBeUndefined();
    expect(metric(await scrape(web.sidecar), 'skein_circuit_state', { destination: 'catalog' })).toBe(0);
    expect(await breakerOf(web)).toMatchObject({ state: 'closed', active: 1 }); // the stream still holds its place

    const ended = new Promise((resolve) => head.on('end', resolve).resume());
    streams[0]!.end();
    await ended;
    await waitUntil(async () => (await breakerOf(web)).active === 0, { what: 'the stream to free its place' });
    expect((await breakerOf(web)).state).toBe('closed');
  });

  it('bounds a half-open trial that gets no answer (route timeout 0s): past resetTimeout a later request is the next trial, while it goes on', async () => {
    let failing = true;
    const held: ServerResponse[] = [];
    const ok = echoHandler('catalog');
    const flaky = await upstream((req, res) => {
      if (req.url === '/hang') held.push(res); // answered only when the test says so
      else if (failing) fail(503)(req, res);
      else ok(req, res);
    });
    const { web, circuit } = await halfOpenCircuit(flaky, () => (failing = false));

    // The trial reaches an endpoint that keeps it waiting; others are refused meanwhile.
    const trial = web.call('/hang');
    await waitUntil(() => held.length === 1, { what: 'the trial to reach the upstream' });
    expect((await web.call('/items')).headers['x-skein-reason']).toBe('circuit-open');
    // Its bound (resetTimeout, 1 s) gives its place up: the next request is a trial, and closes the circuit.
    await waitUntil(async () => (await web.call('/items')).status === 200, { timeoutMs: 6000, what: 'a later trial to close the circuit' });
    expect(await circuit()).toBe(0);
    expect(await breakerOf(web)).toMatchObject({ state: 'closed', active: 1 });

    // The stuck trial was not cut: it is answered when its endpoint answers (counted then as an ordinary attempt).
    held[0]!.writeHead(200, { 'content-type': 'text/plain' }).end('late');
    const late = await trial;
    expect(late.status).toBe(200);
    expect(late.body).toBe('late');
    await waitUntil(async () => (await breakerOf(web)).active === 0, { what: 'the trial to free its place' });
  });

  it('closes a half-open circuit whose endpoint answers well but slower than resetTimeout', async () => {
    let failing = true;
    const ok = echoHandler('catalog');
    const flaky = await upstream((req, res) => {
      if (failing) return fail(503)(req, res);
      // Recovered, but every answer takes 1.5 s: longer than the breaker's 1 s resetTimeout.
      setTimeout(() => ok(req, res), 1500);
    });
    const { web, circuit } = await halfOpenCircuit(flaky, () => (failing = false));
    // Requests keep coming; the first trial's 200 comes after its bound has passed.
    const answers: Promise<number>[] = [];
    await waitUntil(
      async () => {
        answers.push(web.call('/items').then((r) => r.status));
        return (await circuit()) === 0;
      },
      { timeoutMs: 6000, intervalMs: 200, what: 'a slow but good trial to close the circuit' },
    );
    // Every request is answered: refused while the circuit was half-open, else by the slow endpoint.
    const statuses = await Promise.all(answers);
    expect(statuses).toContain(200);
    expect(statuses.every((status) => status === 200 || status === 503)).toBe(true);
  });

  it('judges the circuit on what happened since it closed: one failure after the close does not reopen it', async () => {
    let failing = true;
    const ok = echoHandler('catalog');
    const flaky = await upstream((req, res) => (failing ? fail(500)(req, res) : ok(req, res)));
    const web = await startOutbound(procs, catalog(policy(5), flaky));
    for (let i = 0; i < 5; i++) expect((await web.call('/items')).status).toBe(500);
    expect((await web.call('/items')).headers['x-skein-reason']).toBe('circuit-open');
    failing = false;
    await waitUntil(async () => (await web.call('/items')).status === 200, { timeoutMs: 5000, what: 'the trial to close the circuit' });
    for (let i = 0; i < 3; i++) expect((await web.call('/items')).status).toBe(200);

    // The 5 failures that opened it are behind the close: since then 3 tries succeeded, 2 failed.
    failing = true;
    for (let i = 0; i < 2; i++) {
      const r = await web.call('/items');
      expect(r.status).toBe(500);
      expect(r.headers['x-skein-reason']).toBeUndefined();
    }
    expect(metric(await scrape(web.sidecar), 'skein_circuit_state', { destination: 'catalog' })).toBe(0);
    expect((await breakerOf(web)).state).toBe('closed');
    expect(flaky.requests.length).toBe(5 + 4 + 2);
  });
});

describe('outlier detection', () => {
  /**
   * web calling catalog = [bad, good] round-robin, with no retries and no circuit in the way,
   * ejecting an endpoint after `consecutiveErrors` in a row for `baseEjectionTime`.
   */
  const startEjecting = (bad: TestUpstream, good: TestUpstream, consecutiveErrors: number, baseEjectionTime: string) =>
    startOutbound(
      procs,
      catalog(
        {
          lb: 'round-robin',
          retries: { attempts: 0 },
          circuitBreaker: { volumeThreshold: 1000 },
          outlierDetection: { consecutiveErrors, baseEjectionTime, maxEjectionPercent: 50 },
        },
        bad,
        good,
      ),
    );

  it('ejects an endpoint that keeps failing and moves its traffic to the healthy one', async () => {
    const bad = await upstream(fail(500));
    const good = await upstream(echoHandler('good'));
    const web = await startEjecting(bad, good, 3, '30s');
    const statuses: number[] = [];
    for (let i = 0; i < 20; i++) statuses.push((await web.call('/items')).status);
    expect(bad.requests.length).toBe(3);
    expect(statuses.filter((s) => s === 500).length).toBe(3);
    expect(statuses.slice(-10)).toEqual(Array(10).fill(200));

    const s = await scrape(web.sidecar);
    expect(metric(s, 'skein_outlier_ejections_total', { destination: 'catalog' })).toBe(1);
    expect(metric(s, 'skein_endpoints', { destination: 'catalog', subset: '*', state: 'ejected' })).toBe(1);
    const clusters = (await (await fetch(`${web.sidecar.adminUrl}/clusters`)).json()) as { catalog: { endpoints: { port: number; health: string }[] } };
    const health = Object.fromEntries(clusters.catalog.endpoints.map((e) => [e.port, e.health]));
    expect(health).toEqual({ [bad.port]: 'ejected', [good.port]: 'healthy' });
  });

  it('returns an ejected endpoint to the rotation after baseEjectionTime', async () => {
    let badFailing = true;
    const ok = echoHandler('recovered');
    const bad = await upstream((req, res) => (badFailing ? fail(500)(req, res) : ok(req, res)));
    const good = await upstream(echoHandler('good'));
    const web = await startEjecting(bad, good, 2, '1s');
    for (let i = 0; i < 6; i++) await web.call('/items');
    expect(bad.requests.length).toBe(2);
    const ejectedBy = Date.now();
    badFailing = false;
    await waitUntil(async () => (await web.call('/items'), bad.requests.length > 2), { timeoutMs: 5000, what: 'the ejected endpoint to get traffic again' });
    expect(Date.now() - ejectedBy).toBeGreaterThanOrEqual(700);
    expect(metric(await scrape(web.sidecar), 'skein_endpoints', { destination: 'catalog', state: 'ejected' })).toBe(0);
  });
});

describe('panic routing to ejected endpoints', () => {
  /** Each endpoint's `health` in /clusters, by port. */
  const health = async (web: { sidecar: { adminUrl: string } }): Promise<Record<string, string>> => {
    const clusters = (await (await fetch(`${web.sidecar.adminUrl}/clusters`)).json()) as { catalog: { endpoints: { port: number; health: string }[] } };
    return Object.fromEntries(clusters.catalog.endpoints.map((e) => [e.port, e.health]));
  };

  it('sends retries to an ejected endpoint when the only other one refuses connections, and lets it back once it answers', async () => {
    let aFailing = true;
    const ok = echoHandler('a');
    const a = await upstream((req, res) => (aFailing ? fail(500)(req, res) : ok(req, res)));
    const b = await upstream(echoHandler('b'));
    // The demo's policy, in short: default least-request and breaker, a 30 s ejection that
    // outlasts the test, and maxEjectionPercent 50, so b cannot be ejected while a is.
    const web = await startOutbound(
      procs,
      catalog(
        {
          retries: { attempts: 2, backoff: { base: '1ms', max: '5ms' } },
          outlierDetection: { consecutiveErrors: 2, baseEjectionTime: '30s', maxEjectionPercent: 50 },
        },
        a,
        b,
      ),
    );

    // a fails until it is ejected (its 500s are retried on b, so callers see 200s), then recovers.
    await waitUntil(async () => (await web.call('/items'), (await health(web))[a.port] === 'ejected'), { timeoutMs: 10_000, what: 'a to be ejected' });
    aFailing = false;
    const aBefore = a.requests.length;
    const retriesBefore = metric(await scrape(web.sidecar), 'skein_retries_total', { destination: 'catalog' });

    // b dies while a is still ejected: its port now refuses connections.
    await b.close();
    upstreams.splice(upstreams.indexOf(b), 1);

    const replies = [];
    for (let i = 0; i < 30; i++) replies.push(await web.call(`/items/${i}`));
    expect(replies.map((r) => `${r.status} ${r.headers['x-skein-reason'] ?? ''}`)).toEqual(Array(30).fill('200 '));
    expect(replies.every((r) => r.headers['x-upstream'] === 'a')).toBe(true);
    expect(a.requests.length - aBefore).toBe(30);

    // a answered a request sent to it while ejected: it is back, and b took its place.
    expect(await health(web)).toEqual({ [a.port]: 'healthy', [b.port]: 'ejected' });
    const s = await scrape(web.sidecar);
    expect(metric(s, 'skein_circuit_rejections_total', { destination: 'catalog' })).toBe(0);
    expect(metric(s, 'skein_circuit_state', { destination: 'catalog' })).toBe(0);
    // b cost a few first tries (its streak had to reach consecutiveErrors again), not one per request.
    expect(metric(s, 'skein_retries_total', { destination: 'catalog' }) - retriesBefore).toBeLessThanOrEqual(2);
  });
});

describe('timeouts', () => {
  it('retries a try that exceeds perTryTimeout', async () => {
    let n = 0;
    const ok = echoHandler('catalog');
    const slowFirst = await upstream((req, res) => (++n === 1 ? setTimeout(() => ok(req, res), 4000) : ok(req, res)));
    const web = await startOutbound(procs, catalog({ timeout: '3s', retries: { attempts: 2, perTryTimeout: '200ms', backoff: { base: '1ms', max: '2ms' } } }, slowFirst));
    const r = await web.call('/items');
    expect(r.status).toBe(200);
    expect(r.ms).toBeGreaterThanOrEqual(190);
    expect(r.ms).toBeLessThan(3000); // did not wait for the stalled first try
    expect(slowFirst.requests.map((q) => q.headers['x-skein-attempt'])).toEqual(['1', '2']);
    expect(metric(await scrape(web.sidecar), 'skein_retries_total', { destination: 'catalog', reason: 'timeout' })).toBe(1);
  });

  it('lets a try run to the deadline when the retry budget refuses the retry its per-try timeout would make', async () => {
    const slow = await upstream((req, res) => setTimeout(() => echoHandler('catalog')(req, res), 300));
    const web = await startOutbound(procs, catalog({ timeout: '3s', retries: { attempts: 2, perTryTimeout: '200ms', backoff: { base: '1ms', max: '2ms' }, budget: { ratio: 0, minPerSecond: 0 } } }, slow));
    const r = await web.call('/items');
    // Cut at 200 ms it would have been a 504 with no retry to follow: a slow success instead.
    expect(r.status, r.body).toBe(200);
    expect(r.ms).toBeGreaterThanOrEqual(290);
    expect(slow.requests).toHaveLength(1);
    const s = await scrape(web.sidecar);
    expect(metric(s, 'skein_retry_budget_exhausted_total', { destination: 'catalog' })).toBe(1);
    expect(metric(s, 'skein_retries_total', { destination: 'catalog' })).toBe(0);
  });

  it('counts a try whose retry the budget refused at its per-try timeout once, when it then fails as well', async () => {
    const slow = await upstream((req, res) => setTimeout(() => fail(503)(req, res), 300));
    const web = await startOutbound(procs, catalog({ timeout: '3s', retries: { attempts: 2, perTryTimeout: '200ms', backoff: { base: '1ms', max: '2ms' }, budget: { ratio: 0, minPerSecond: 0 } } }, slow));
    const r = await web.call('/items');
    expect(r.status, r.body).toBe(503);
    expect(slow.requests).toHaveLength(1);
    // One retry not sent: refused at the per-try timeout, and again (not counted again) at the 503.
    const s = await scrape(web.sidecar);
    expect(metric(s, 'skein_retry_budget_exhausted_total', { destination: 'catalog' })).toBe(1);
    expect(metric(s, 'skein_retries_total', { destination: 'catalog' })).toBe(0);
  });

  it('lets a try run on, counting no retry, when the retry its per-try timeout would make could not start before the deadline', async () => {
    const slow = await upstream((req, res) => setTimeout(() => echoHandler('catalog')(req, res), 300));
    // A backoff drawn from [0, 24 h] all but never ends in the 800 ms left after the per-try time.
    const web = await startOutbound(procs, catalog({ timeout: '1s', retries: { attempts: 2, perTryTimeout: '200ms', on: ['gateway-error'], backoff: { base: '24h', max: '24h' } } }, slow));
    const r = await web.call('/items');
    // Cut at 200 ms it waited for the deadline, a 504 at 1 s, with a retry counted that was never sent.
    expect(r.status, r.body).toBe(200);
    expect(r.ms).toBeLessThan(900);
    expect(slow.requests).toHaveLength(1);
    expect(metric(await scrape(web.sidecar), 'skein_retries_total', { destination: 'catalog' })).toBe(0);
  });

  it('answers a retryable status at once, counting no retry and taking no budget, when its retry could not start before the deadline', async () => {
    const failing = await upstream(fail(503));
    const web = await startOutbound(procs, catalog({ timeout: '1s', retries: { attempts: 2, on: ['gateway-error'], backoff: { base: '24h', max: '24h' }, budget: { ratio: 0, minPerSecond: 1 } } }, failing));
    const r = await web.call('/items');
    expect(r.status, r.body).toBe(503);
    expect(r.headers['x-skein-reason']).toBeUndefined();
    expect(r.ms).toBeLessThan(800);
    expect(failing.requests).toHaveLength(1);
    const s = await scrape(web.sidecar);
    expect(metric(s, 'skein_retries_total', { destination: 'catalog' })).toBe(0);
    expect(metric(s, 'skein_retry_budget_exhausted_total', { destination: 'catalog' })).toBe(0);
    const clusters = (await (await fetch(`${web.sidecar.adminUrl}/clusters`)).json()) as { catalog: { retryBudgetAvailable: number } };
    expect(clusters.catalog.retryBudgetAvailable).toBeGreaterThanOrEqual(1);
  });

  it('answers 504 at the deadline to a stalled try whose retry could not start before it', async () => {
    const stalled = await upstream(() => {});
    // Backoffs are drawn from [0, 5 s]: nearly every one outlasts the 300 ms left after the cut.
    const web = await startOutbound(procs, catalog({ timeout: '600ms', retries: { attempts: 2, perTryTimeout: '300ms', backoff: { base: '5s', max: '5s' } } }, stalled));
    const replies = await Promise.all(Array.from({ length: 6 }, () => web.call('/items')));
    for (const r of replies) {
      expect(r.status).toBe(504);
      expect(r.headers['x-skein-reason']).toBe('timeout');
      expect(r.body).toContain('catalog did not answer within 600 ms');
      expect(r.ms).toBeGreaterThanOrEqual(580);
      expect(r.ms).toBeLessThan(1000);
    }
  });

  it('answers 504 at the deadline when it falls in the backoff after a connect failure, the deadline set by the end of a streamed body', async () => {
    const closed = await upstream(fail(500));
    await closed.close(); // its port now refuses connections
    upstreams.splice(upstreams.indexOf(closed), 1);
    // A backoff drawn from [0, 1 h]: one under the time to the deadline (a second try made, refused, and answered at once, since no
    // further wait fits) comes about once in ten thousand uploads; with [0, 5 s] it came in half the runs of four.
    const policy = { timeout: '400ms', retries: { attempts: 5, on: ['connect-failure' as const], backoff: { base: '1h', max: '1h' } }, circuitBreaker: { volumeThreshold: 1000 } };
    const web = await startOutbound(procs, catalog(policy, closed));
    // Chunked bodies stream through: first tries are refused while the bodies still come, and
    // each deadline starts at its body's end, during the backoff.
    const uploads = Array.from({ length: 4 }, () => chunkedUpload(`${web.sidecar.outboundUrl}/upload`));
    // Each refused first try counts against the endpoint (a retry is counted only once it goes out, which these never do).
    await waitUntil(async () => {
      const clusters = (await (await fetch(`${web.sidecar.adminUrl}/clusters`)).json()) as { catalog: { endpoints: { outlier: { consecutiveErrors: number } | null }[] } };
      return (clusters.catalog.endpoints[0]?.outlier?.consecutiveErrors ?? 0) >= uploads.length;
    }, { what: 'the refused first tries' });
    const ends = uploads.map((u) => u.end());
    const replies = await Promise.all(uploads.map((u) => u.reply));
    replies.forEach((r, i) => {
      expect(r.status, r.body).toBe(504);
      expect(r.headers['x-skein-reason']).toBe('timeout');
      expect(r.body).toContain('catalog did not answer within 400 ms');
      expect(r.at - ends[i]!).toBeGreaterThanOrEqual(380);
      expect(r.at - ends[i]!).toBeLessThan(800);
    });
  });

  it('answers 504 timeout when the whole request, retries included, exceeds timeout', async () => {
    const stalled = await upstream((req, res) => setTimeout(() => echoHandler('late')(req, res), 4000));
    const web = await startOutbound(procs, catalog({ timeout: '500ms', retries: { attempts: 5, perTryTimeout: '200ms', backoff: { base: '1ms', max: '2ms' } } }, stalled));
    const r = await web.call('/items');
    expect(r.status).toBe(504);
    expect(r.headers['x-skein-reason']).toBe('timeout');
    expect(r.ms).toBeGreaterThanOrEqual(480);
    expect(r.ms).toBeLessThan(3000);
    // 200 ms tries inside a 500 ms budget: the deadline cut the third.
    expect(stalled.requests.length).toBeLessThanOrEqual(3);
  });
});
