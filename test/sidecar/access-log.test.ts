/**
 * `--access-log` between real sidecar processes over mTLS (static mode, identities from
 * files): one line per request on each sidecar, the caller's outbound line and the callee's
 * inbound one sharing the trace and request ids; the sidecar's own answers say why; a retried
 * request is one line with its attempts; a request it could not parse is a line too; log rotation (rename, SIGHUP) moves later lines to a
 * new file; the text format; and flags that cannot work refused before anything starts.
 */
import { readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Processes, makeCa, makeLeaf, startUpstream, tempDir, waitUntil, writeIdentity, writeTempConfig, type SpawnedSidecar, type TestUpstream } from '../support/index.js';
import type { AccessLogRecord } from '../../sidecar/telemetry/access-log.js';
import { rawExchange } from './http.js';
import { metric, scrape, send } from './resilience-fixture.js';

type Line = AccessLogRecord;

const procs = new Processes();
const upstreams: TestUpstream[] = [];
let dir: string;
let app: TestUpstream;
let web: SpawnedSidecar;
let catalog: SpawnedSidecar;

function linesOf(path: string): Line[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  return text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Line);
}

/** The lines of `path` for the request with this x-request-id, once there are `count`. */
function linesFor(path: string, requestId: string, count = 1): Promise<Line[]> {
  return waitUntil(() => {
    const found = linesOf(path).filter((l) => l.requestId === requestId);
    return found.length >= count && found;
  }, { what: `${count} access log line(s) for ${requestId} in ${path}` });
}

beforeAll(async () => {
  dir = tempDir('skein-access-log-');
  const ca = makeCa();
  const identity = (service: string) => writeIdentity(dir, service, makeLeaf(ca, service));
  // The catalog app fails a request's first try when asked to, to show a retried request's line.
  const failed = new Set<string>();
  app = await startUpstream((req, res) => {
    const id = req.headers['x-request-id'] as string;
    if (req.headers['x-fail-once'] !== undefined && !failed.has(id)) {
      failed.add(id);
      res.writeHead(503, { 'content-type': 'text/plain' }).end('busy\n');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"items":[1,2,3]}');
  });
  const webApp = await startUpstream((_req, res) => res.end('web'));
  upstreams.push(app, webApp);
  catalog = await procs.sidecar({
    service: 'catalog', appPort: app.port, identity: identity('catalog'), config: writeTempConfig({ version: '1' }),
    extraArgs: ['--access-log', join(dir, 'catalog.log')],
  });
  const webConfig = writeTempConfig({
    version: '1',
    services: {
      catalog: {
        retries: { attempts: 1, on: ['gateway-error'], backoff: { base: '1ms' } },
        endpoints: [{ address: '127.0.0.1', port: catalog.inboundPort, labels: { version: 'v1' } }],
      },
    },
    routes: { catalog: [{ name: 'items', match: { pathPrefix: '/items' }, split: { v1: 100 } }] },
  });
  web = await procs.sidecar({ service: 'web', appPort: webApp.port, identity: identity('web'), config: webConfig, extraArgs: ['--access-log', join(dir, 'web.log'), '--access-log-format', 'json'] });
}, 60_000);

afterAll(async () => {
  await procs.killAll();
  await Promise.all(upstreams.map((u) => u.close()));
});

describe('access log', () => {
  it('writes one line per request on each sidecar: the caller\'s outbound line and the callee\'s inbound one share the ids', async () => {
    const r = await send(`${web.outboundUrl}/items/7?token=secret`, { headers: { host: 'catalog', 'x-request-id': 'plain-1', 'user-agent': 'shop/1.0' } });
    expect(r.status, r.body).toBe(200);
    const [out] = await linesFor(join(dir, 'web.log'), 'plain-1');
    const [inb] = await linesFor(join(dir, 'catalog.log'), 'plain-1');
    expect(out).toMatchObject({
      direction: 'outbound', source: 'web', destination: 'catalog', subset: 'v1', route: 'items', protocol: 'http', method: 'GET',
      authority: 'catalog', path: '/items/7', status: 200, attempts: 1, upstream: `127.0.0.1:${catalog.inboundPort}`,
      responseBytes: Buffer.byteLength(r.body), userAgent: 'shop/1.0',
    });
    // The peer's identity, from its verified certificate, is the inbound line's source.
    expect(inb).toMatchObject({ direction: 'inbound', source: 'web', destination: 'catalog', path: '/items/7', status: 200, upstream: `127.0.0.1:${app.port}`, responseBytes: Buffer.byteLength(r.body) });
    expect(inb!.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(inb!.traceId).toBe(out!.traceId);
    expect(Date.parse(out!.time)).toBeLessThanOrEqual(Date.parse(inb!.time));
    expect(out!.durationMs).toBeGreaterThanOrEqual(inb!.durationMs);
    expect(readFileSync(join(dir, 'web.log'), 'utf8')).not.toContain('secret');
  });

  it('names the x-request-id the sidecar made for a request that came without one, as the app got it', async () => {
    expect((await send(`${web.outboundUrl}/items/no-id`, { headers: { host: 'catalog' } })).status).toBe(200);
    const made = app.requests.find((q) => q.url === '/items/no-id')!.headers['x-request-id'] as string;
    expect(made).toMatch(/^[0-9a-f-]{36}$/);
    const [out] = await linesFor(join(dir, 'web.log'), made);
    const [inb] = await linesFor(join(dir, 'catalog.log'), made);
    expect([out!.path, inb!.path]).toEqual(['/items/no-id', '/items/no-id']);
  });

  it('says why on an answer the sidecar made, and logs a retried request once with its attempts', async () => {
    const none = await send(`${web.outboundUrl}/other`, { headers: { host: 'catalog', 'x-request-id': 'unrouted-1' } });
    expect(none.status).toBe(404);
    const [refused] = await linesFor(join(dir, 'web.log'), 'unrouted-1');
    expect(refused).toMatchObject({ status: 404, reason: 'no-route', reasonDetail: 'no route rule of catalog matches GET /other', route: '', upstream: '', attempts: 0 });

    const retried = await send(`${web.outboundUrl}/items`, { method: 'POST', body: 'abc', headers: { host: 'catalog', 'x-request-id': 'retried-1', 'x-fail-once': '1', 'content-type': 'text/plain' } });
    expect(retried.status, retried.body).toBe(503);
    // A POST is not retried after it reached the app: one try, relayed as the app answered it.
    const [post] = await linesFor(join(dir, 'web.log'), 'retried-1');
    expect(post).toMatchObject({ method: 'POST', status: 503, attempts: 1, requestBytes: 3 });
    expect(post!.reason).toBeUndefined();

    const get = await send(`${web.outboundUrl}/items`, { headers: { host: 'catalog', 'x-request-id': 'retried-2', 'x-fail-once': '1' } });
    expect(get.status, get.body).toBe(200);
    const [once] = await linesFor(join(dir, 'web.log'), 'retried-2');
    expect(once).toMatchObject({ status: 200, attempts: 2 });
    // Each try is a request of its own to the callee.
    const tries = await linesFor(join(dir, 'catalog.log'), 'retried-2', 2);
    expect(tries.map((l) => l.status).sort()).toEqual([200, 503]);
    expect(linesOf(join(dir, 'web.log')).filter((l) => l.requestId === 'retried-2')).toHaveLength(1);
    expect(metric(await scrape(web), 'skein_access_log_dropped_total')).toBe(0);
  });

  it('logs a request it could not parse, with why', async () => {
    const answer = await rawExchange(web.outboundPort, 'GET /items HTTP/1.1\r\nHost: catalog\r\nno colon here\r\n\r\n', /\r\n\r\n/);
    expect(answer).toMatch(/^HTTP\/1\.1 400 /);
    const line = await waitUntil(() => linesOf(join(dir, 'web.log')).find((l) => l.reason === 'bad-request'), { what: 'the malformed request\'s line' });
    expect(line).toMatchObject({ direction: 'outbound', status: 400, method: '', path: '', requestId: '' });
    expect(line.reasonDetail).toMatch(/^malformed HTTP request: /);
  });

  it('moves later lines to a new file after a rotation (the file renamed, then SIGHUP)', async () => {
    const path = join(dir, 'web.log');
    expect((await send(`${web.outboundUrl}/items`, { headers: { host: 'catalog', 'x-request-id': 'before-rotation' } })).status).toBe(200);
    await linesFor(path, 'before-rotation');
    renameSync(path, `${path}.1`);
    web.kill('SIGHUP');
    await waitUntil(() => web.output().includes('access log reopened'), { what: 'the reopen' });
    expect((await send(`${web.outboundUrl}/items`, { headers: { host: 'catalog', 'x-request-id': 'after-rotation' } })).status).toBe(200);
    await linesFor(path, 'after-rotation');
    expect(linesOf(path).map((l) => l.requestId)).toEqual(['after-rotation']);
    expect(linesOf(`${path}.1`).some((l) => l.requestId === 'before-rotation')).toBe(true);
    expect(linesOf(`${path}.1`).some((l) => l.requestId === 'after-rotation')).toBe(false);
    expect(web.hasExited).toBe(false);
  });
});

describe('access log flags', () => {
  it('writes the text format to stdout', async () => {
    const shop = await procs.sidecar({
      service: 'shop', appPort: app.port, config: writeTempConfig({ version: '1', services: { catalog: { endpoints: [{ address: '127.0.0.1', port: app.port }] } } }),
      extraArgs: ['--access-log', 'stdout', '--access-log-format', 'text'],
    });
    expect((await send(`${shop.outboundUrl}/items?x=1`, { headers: { host: 'catalog', 'x-request-id': 'text-1', 'user-agent': 'curl/8' } })).status).toBe(200);
    const line = await waitUntil(() => shop.output().split('\n').find((l) => l.includes(' text-1 ')), { what: 'the text line' });
    expect(line).toMatch(new RegExp(`^\\[\\d{4}-\\d\\d-\\d\\dT[^\\]]+Z\\] outbound "GET /items http" 200 - - 1 - 17 [\\d.]+ "catalog" shop catalog \\* default 127\\.0\\.0\\.1:${app.port} text-1 [0-9a-f]{32} "curl/8" -$`));
  });

  it('refuses a destination it cannot open (exit 1), a format it does not know, and a format without a destination (exit 2)', async () => {
    const config = writeTempConfig({ version: '1' });
    const base = ['sidecar', '--service', 'x', '--app-port', '1', '--config', config, '--inbound-port', '0', '--outbound-port', '0', '--admin-port', '0'];
    const cases: [string[], number, RegExp][] = [
      [['--access-log', join(dir, 'no-such-dir', 'a.log')], 1, /--access-log \S+no-such-dir\/a\.log: cannot open it for appending: ENOENT/],
      [['--access-log', 'stdout', '--access-log-format', 'yaml'], 2, /option '--access-log-format <format>' argument 'yaml' is invalid/],
      [['--access-log-format', 'text'], 2, /^skein: --access-log-format goes with --access-log/m],
      [['--access-log', ' '], 2, /give stdout, stderr, a file path, or off/],
    ];
    for (const [args, code, message] of cases) {
      const child = procs.skein(args.join(' '), [...base, ...args]);
      const exit = await child.exited;
      expect(exit.code, child.output()).toBe(code);
      expect(child.output()).toMatch(message);
    }
  });
});
