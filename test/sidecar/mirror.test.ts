/** Traffic mirroring end to end: copies reach the mirror subset; its answers never reach the caller. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer as createH2Server, type Http2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { echoHandler, Processes, startUpstream, waitUntil, writeConfigFile, type Handler, type TestUpstream } from '../support/index.js';
import { endpointOf, startOutbound } from './resilience-fixture.js';

const procs = new Processes();
const upstreams: TestUpstream[] = [];

const h2Servers: Http2Server[] = [];

afterEach(async () => {
  await procs.killAll();
  await Promise.all(upstreams.splice(0).map((u) => u.close()));
  await Promise.all(h2Servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
});

/** An h2c server on port 0 for a `protocol: grpc` service's endpoint; `onStream` gets each stream. */
async function h2Endpoint(onStream: (stream: import('node:http2').ServerHttp2Stream) => void): Promise<number> {
  const server = createH2Server();
  server.on('session', (session) => session.on('error', () => {}));
  server.on('stream', (stream) => {
    stream.on('error', () => {});
    onStream(stream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  h2Servers.push(server);
  return (server.address() as AddressInfo).port;
}

const bodies = new Map<string, string>();
/** Reads the body, remembers it by x-request-id, then hands over to `next`. */
const recordingBody = (next: Handler): Handler => (req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    bodies.set(`${(req as IncomingMessage).headers['x-skein-mirror'] ?? 'primary'}:${req.headers['x-request-id']}`, Buffer.concat(chunks).toString());
    next(req, res);
  });
};

async function mirrored(mirrorHandler: Handler, percent = 100, ruleTimeout?: string) {
  const primary = await startUpstream(recordingBody(echoHandler('v1')));
  const shadow = await startUpstream(recordingBody(mirrorHandler));
  upstreams.push(primary, shadow);
  const snapshot = (version: string) => ({
    version,
    services: { catalog: { endpoints: [endpointOf(primary, 'v1'), endpointOf(shadow, 'v2')] } },
    routes: { catalog: [{ match: { pathPrefix: '/' }, split: { v1: 100 }, mirror: { subset: 'v2', percent }, ...(ruleTimeout !== undefined ? { timeout: ruleTimeout } : {}) }] },
  });
  const web = await startOutbound(procs, snapshot('1'));
  return { primary, shadow, web, snapshot };
}

describe('mirroring', () => {
  it('copies requests (with their buffered bodies) to the mirror subset', async () => {
    const { primary, shadow, web } = await mirrored(echoHandler('v2'));
    const get = await web.call('/items?page=2', { headers: { 'x-request-id': 'get-1' } });
    expect(get.status).toBe(200);
    expect(JSON.parse(get.body).name).toBe('v1');
    const post = await web.call('/orders', { method: 'POST', body: '{"item":42}', headers: { 'content-type': 'application/json', 'x-request-id': 'post-1' } });
    expect(JSON.parse(post.body).name).toBe('v1');

    await waitUntil(() => shadow.requests.length === 2, { what: 'two mirrored copies' });
    expect(shadow.requests.map((r) => [r.method, r.url])).toEqual([
      ['GET', '/items?page=2'],
      ['POST', '/orders'],
    ]);
    expect(shadow.requests.every((r) => r.headers['x-skein-mirror'] === '1')).toBe(true);
    expect(bodies.get('1:post-1')).toBe('{"item":42}');
    expect(primary.requests.length).toBe(2);
    expect(primary.requests.some((r) => r.headers['x-skein-mirror'] !== undefined)).toBe(false);
  });

  it('never lets a slow or failing mirror reach or delay the caller', async () => {
    let n = 0;
    const { primary, shadow, web } = await mirrored((req, res) => {
      // Alternate: stall for 5 s, answer 500, or drop the connection.
      const mode = n++ % 3;
      if (mode === 0) setTimeout(() => echoHandler('v2')(req, res), 5000);
      else if (mode === 1) {
        res.writeHead(500);
        res.end('mirror broke');
      } else req.socket.destroy();
    });
    for (let i = 0; i < 6; i++) {
      const r = await web.call(`/items/${i}`);
      expect(r.status).toBe(200);
      expect(JSON.parse(r.body).name).toBe('v1');
      expect(r.ms).toBeLessThan(2500); // far below the mirror's 5 s stall
    }
    // A copy the mirror drops unanswered on a reused connection goes once more on a new one (the
    // keep-alive race, http1/client.ts), so the mirror sees six copies or a few more.
    await waitUntil(() => new Set(shadow.requests.map((r) => r.url)).size === 6, { what: 'six mirrored copies' });
    expect(primary.requests.length).toBe(6);
  });

  it('bounds mirror copies by 10 s under a rule with no timeout (0s), so a mirror that stalled is copied to again', async () => {
    // The first 64 copies (the cap in flight) get no answer; later ones are answered.
    let copies = 0;
    const { shadow, web } = await mirrored((req, res) => {
      if (++copies > 64) echoHandler('v2')(req, res);
    }, 100, '0s');
    for (let i = 0; i < 64; i++) expect((await web.call(`/stall/${i}`)).status).toBe(200);
    await waitUntil(() => shadow.requests.length === 64, { what: '64 stalled copies' });
    // Once the stalled copies time out (10 s), copies go again.
    const started = Date.now();
    await waitUntil(async () => ((await web.call('/again')).status === 200 && shadow.requests.some((r) => r.url === '/again')) || undefined, { timeoutMs: 20_000, intervalMs: 250, what: 'a copy after the stalled ones timed out' });
    expect(Date.now() - started).toBeGreaterThan(5_000);
  }, 40_000);

  it('bounds mirror copies to an HTTP/2 (protocol: grpc) endpoint by the rule\'s timeout too, headers and body', async () => {
    const primary = await h2Endpoint((stream) => stream.respond({ ':status': 200 }, { endStream: true }));
    // The first copy gets no answer; the second a head and then a body that never ends.
    const copies: { closedAfterMs?: number }[] = [];
    const shadow = await h2Endpoint((stream) => {
      const copy: { closedAfterMs?: number } = {};
      copies.push(copy);
      const started = performance.now();
      stream.on('close', () => (copy.closedAfterMs = performance.now() - started));
      if (copies.length === 2) {
        stream.respond({ ':status': 200 });
        stream.write('the start of a body that never ends');
      }
    });
    const endpoint = (port: number, version: string) => ({ address: '127.0.0.1', port, labels: { version } });
    const web = await startOutbound(procs, {
      version: '1',
      services: { catalog: { protocol: 'grpc', endpoints: [endpoint(primary, 'v1'), endpoint(shadow, 'v2')] } },
      routes: { catalog: [{ match: { pathPrefix: '/' }, split: { v1: 100 }, mirror: { subset: 'v2', percent: 100 }, timeout: '300ms' }] },
    });
    for (const path of ['/no-answer', '/endless-body']) expect((await web.call(path)).status).toBe(200);
    // Each copy is reset within its bounds (300 ms for its head, 300 ms more for its body), not held for good.
    await waitUntil(() => copies.length === 2 && copies.every((c) => c.closedAfterMs !== undefined), { timeoutMs: 5_000, what: 'both copies cut' });
    expect(copies[0]!.closedAfterMs).toBeLessThan(2_000);
    expect(copies[1]!.closedAfterMs).toBeLessThan(2_000);
  });

  it('keeps the cap of 64 copies in flight across reloads, which compile the rule again', async () => {
    const held: ServerResponse[] = [];
    const { shadow, web, snapshot } = await mirrored((req, res) => {
      if (req.url === '/last') echoHandler('v2')(req, res);
      else held.push(res);
    });
    for (let i = 0; i < 70; i++) expect((await web.call(`/before/${i}`)).status).toBe(200);
    await waitUntil(() => shadow.requests.length === 64, { what: '64 copies held by the mirror' });
    for (const version of ['2', '3']) {
      writeConfigFile(web.config, snapshot(version));
      await waitUntil(async () => ((await (await fetch(`${web.sidecar.adminUrl}/config`)).json()) as { version: string }).version === version, { what: `config version ${version}` });
      for (let i = 0; i < 70; i++) expect((await web.call(`/v${version}/${i}`)).status).toBe(200);
    }
    // Once the held copies are answered, copies go again: the first to arrive comes after any
    // the reloads had let out.
    for (const res of held) res.end();
    await waitUntil(async () => (await web.call('/last'), shadow.requests.some((r) => r.url === '/last')), { what: 'a copy after the held ones were answered' });
    expect(shadow.requests.filter((r) => r.url !== '/last').length).toBe(64);
  });

  it('mirrors only its percentage of requests', async () => {
    const { shadow, web } = await mirrored(echoHandler('v2'), 50);
    for (let i = 0; i < 60; i++) expect((await web.call('/items')).status).toBe(200);
    // Binomial(60, 0.5) falls outside [12, 48] with probability ~1e-6.
    await waitUntil(() => shadow.requests.length >= 12, { what: 'mirrored copies to land' });
    expect(shadow.requests.length).toBeGreaterThanOrEqual(12);
    expect(shadow.requests.length).toBeLessThanOrEqual(48);
  });
});
