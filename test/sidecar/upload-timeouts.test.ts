/**
 * Slow uploads against the route and per-try timeouts: both count from the end of the
 * request body (as Envoy's do), so a client that takes its time sending never turns into a
 * 504 or an endpoint failure, while an endpoint that is slow once it has the whole request
 * still times out. Real `web` sidecars (plain, and through an mTLS pair) before real apps.
 */
import { request, type IncomingHttpHeaders } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import type { ServicePolicyInput } from '../../common/config/schema.js';
import { freePorts, makeCa, makeLeaf, Processes, startUpstream, tempDir, writeIdentity, writeTempConfig, type Handler, type SpawnedSidecar, type TestUpstream } from '../support/index.js';
import { endpointOf, metric, scrape } from './resilience-fixture.js';

const procs = new Processes();
const upstreams: TestUpstream[] = [];

afterEach(async () => {
  await procs.killAll();
  await Promise.all(upstreams.splice(0).map((u) => u.close()));
});

/** Reads the whole body; `/hang` then never answers, `/late` answers 300 ms after it; others at once with the byte count. */
const app: Handler = (req, res) => {
  let bytes = 0;
  req.on('data', (c: Buffer) => (bytes += c.length));
  req.on('end', () => {
    if (req.url === '/hang') return;
    const answer = (): void => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ bytes }));
    };
    if (req.url === '/late') setTimeout(answer, 300);
    else answer();
  });
};

async function upstream(): Promise<TestUpstream> {
  const u = await startUpstream(app);
  upstreams.push(u);
  return u;
}

interface Upload {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  readonly ms: number;
}

/**
 * POSTs `chunks` × `chunkBytes` through the sidecar's outbound listener, one chunk every
 * `intervalMs` (the first at once): chunked, or with the whole Content-Length declared up front.
 */
function trickle(sc: SpawnedSidecar, path: string, o: { chunks: number; chunkBytes: number; intervalMs: number; declared?: boolean; host?: string }): Promise<Upload> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { host: o.host ?? 'catalog', 'content-type': 'application/octet-stream' };
    if (o.declared) headers['content-length'] = String(o.chunks * o.chunkBytes);
    const req = request(`${sc.outboundUrl}${path}`, { method: 'POST', headers, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts).toString(), ms: performance.now() - started });
      });
    });
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    let sent = 0;
    let timer: NodeJS.Timeout | undefined;
    const next = (): void => {
      if (req.destroyed) return;
      req.write(Buffer.alloc(o.chunkBytes, 'u'));
      if (++sent === o.chunks) req.end();
      else timer = setTimeout(next, o.intervalMs);
    };
    next();
  });
}

function snapshot(policy: ServicePolicyInput, ...endpoints: TestUpstream[]) {
  return { version: '1', services: { catalog: { ...policy, endpoints: endpoints.map((e) => endpointOf(e)) } } };
}

async function outbound(policy: ServicePolicyInput, ...endpoints: TestUpstream[]): Promise<SpawnedSidecar> {
  const webApp = await upstream();
  return procs.sidecar({ service: 'web', appPort: webApp.port, config: writeTempConfig(snapshot(policy, ...endpoints)) });
}

interface Clusters {
  catalog: { endpoints: { port: number; health: string; outlier: { consecutiveErrors: number; ejections: number } | null }[] };
}

describe('upload timeouts', () => {
  it('lets six concurrent chunked uploads trickled over 1.5 s through under the default 1 s per-try timeout, blaming no endpoint', async () => {
    const a = await upstream();
    const b = await upstream();
    // Default timeouts (3 s, 1 s per try); an outlier detector that would eject after 2 failures.
    const web = await outbound({ lb: 'round-robin', outlierDetection: { consecutiveErrors: 2 } }, a, b);
    const uploads = await Promise.all(Array.from({ length: 6 }, () => trickle(web, '/upload', { chunks: 11, chunkBytes: 1000, intervalMs: 150 })));
    for (const u of uploads) {
      expect(u.status, u.body).toBe(200);
      expect(JSON.parse(u.body)).toEqual({ bytes: 11_000 });
      expect(u.ms).toBeGreaterThan(1400);
    }
    const s = await scrape(web);
    expect(metric(s, 'skein_outlier_ejections_total', { destination: 'catalog' })).toBe(0);
    expect(metric(s, 'skein_requests_total', { destination: 'catalog', code: '200' })).toBe(6);
    const clusters = (await (await fetch(`${web.adminUrl}/clusters`)).json()) as Clusters;
    expect(clusters.catalog.endpoints.map((e) => [e.health, e.outlier?.consecutiveErrors])).toEqual([
      ['healthy', 0],
      ['healthy', 0],
    ]);
  });

  it('lets a streamed Content-Length body (past the 64 KiB replay buffer) take longer than the per-try timeout', async () => {
    const web = await outbound({}, await upstream());
    const u = await trickle(web, '/upload', { chunks: 8, chunkBytes: 25_000, intervalMs: 200, declared: true });
    expect(u.status, u.body).toBe(200);
    expect(JSON.parse(u.body)).toEqual({ bytes: 200_000 });
  });

  it('starts the route timeout of a buffered (replayable) body at its end: 3.3 s of upload and a 300 ms answer fit a 3 s timeout', async () => {
    const web = await outbound({ timeout: '3s' }, await upstream());
    const u = await trickle(web, '/late', { chunks: 12, chunkBytes: 1000, intervalMs: 300, declared: true });
    expect(u.status, u.body).toBe(200);
    expect(JSON.parse(u.body)).toEqual({ bytes: 12_000 });
    expect(u.ms).toBeGreaterThan(3300);
  });

  it('still times out an endpoint that does not answer once it has the whole body: 504 one route timeout after the end of the upload', async () => {
    const web = await outbound({}, await upstream());
    const u = await trickle(web, '/hang', { chunks: 11, chunkBytes: 1000, intervalMs: 150 });
    expect(u.status, u.body).toBe(504);
    expect(u.headers['x-skein-reason']).toBe('timeout');
    expect(u.body).toContain('within 3000 ms');
    // 1.5 s of upload, then the 3 s route timeout: a POST that reached its endpoint is never
    // retried, so the 1 s per-try timeout (there for a retry to follow) does not cut it.
    expect(u.ms).toBeGreaterThan(4400);
    expect(u.ms).toBeLessThan(6500);
  });

  it('lets a slow upload through an mTLS sidecar pair (the mux) too', async () => {
    const target = await upstream();
    const ca = makeCa();
    const dir = tempDir();
    const [catalogIn] = (await freePorts(1)) as [number];
    const config = writeTempConfig({
      version: '1',
      services: { catalog: { endpoints: [{ address: '127.0.0.1', port: catalogIn, labels: { version: 'v1' } }] } },
      intentions: { defaultAction: 'allow' },
    }, dir);
    const id = (name: string) => writeIdentity(dir, name, makeLeaf(ca, name));
    await procs.sidecar({ service: 'catalog', appPort: target.port, config, inboundPort: catalogIn, identity: id('catalog') });
    const web = await procs.sidecar({ service: 'web', appPort: target.port, config, identity: id('web') });
    const chunked = await trickle(web, '/upload', { chunks: 11, chunkBytes: 1000, intervalMs: 150 });
    expect(chunked.status, chunked.body).toBe(200);
    expect(JSON.parse(chunked.body)).toEqual({ bytes: 11_000 });
    const declared = await trickle(web, '/upload', { chunks: 8, chunkBytes: 25_000, intervalMs: 200, declared: true });
    expect(declared.status, declared.body).toBe(200);
    expect(JSON.parse(declared.body)).toEqual({ bytes: 200_000 });
  });
});
