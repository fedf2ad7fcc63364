/**
 * A route rule's rewrite and header changes end to end: the caller's sidecar forwards the
 * request to the destination's sidecar with the rule's path prefix, Host and headers changed,
 * and changes the answer's headers on its way back; every try carries the changes once, mirror
 * copies carry them too, sidecar-made answers and other rules' requests are left as they are,
 * and a reload of the static file changes them live.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { SnapshotInput } from '../../common/config/schema.js';
import { echoHandler, Processes, startUpstream, waitUntil, writeConfigFile, writeTempConfig, type Handler, type TestUpstream } from '../support/index.js';
import { rawExchange } from './http.js';
import { endpointOf, send } from './resilience-fixture.js';

const procs = new Processes();
const upstreams: TestUpstream[] = [];

afterEach(async () => {
  await procs.killAll();
  await Promise.all(upstreams.splice(0).map((u) => u.close()));
});

/** Echoes what it received, says who answered in `server`; a request with `x-fail-once` fails its first try with a 503. */
function catalogApp(): Handler {
  const failed = new Set<string>();
  const echo = echoHandler('catalog');
  return (req, res) => {
    const id = req.headers['x-fail-once'];
    if (typeof id === 'string' && !failed.has(id)) {
      failed.add(id);
      res.writeHead(503, { 'content-type': 'text/plain', server: 'catalog-app' }).end('busy\n');
      return;
    }
    res.setHeader('server', 'catalog-app');
    res.setHeader('x-app', 'catalog');
    echo(req, res);
  };
}

function webSnapshot(version: string, catalogPort: number, shadow: TestUpstream, api: string, cacheControl: string): SnapshotInput {
  return {
    version,
    services: {
      catalog: {
        retries: { attempts: 1, on: ['gateway-error'], backoff: { base: '1ms' } },
        subsets: { v1: { version: 'v1' }, v2: { version: 'v2' }, v3: { version: 'v3' } },
        endpoints: [{ address: '127.0.0.1', port: catalogPort, labels: { version: 'v1' } }, endpointOf(shadow, 'v2')],
      },
    },
    routes: {
      catalog: [
        {
          name: 'changed',
          match: { pathPrefix: '/api/v2/' },
          rewrite: { pathPrefix: '/v2/', host: 'catalog.internal' },
          requestHeaders: { set: { 'x-api': api }, add: { 'x-tag': 'a' }, remove: ['x-debug'] },
          responseHeaders: { set: { 'cache-control': cacheControl }, remove: ['server'] },
          split: { v1: 100 },
          mirror: { subset: 'v2', percent: 100 },
        },
        {
          name: 'nowhere',
          match: { pathPrefix: '/none/' },
          responseHeaders: { set: { 'cache-control': cacheControl } },
          split: { v3: 100 },
        },
        { name: 'plain', match: { pathPrefix: '/' }, split: { v1: 100 } },
      ],
    },
  };
}

interface Echo {
  path: string;
  headers: Record<string, string>;
}

async function mesh() {
  const app = await startUpstream(catalogApp());
  const shadow = await startUpstream(echoHandler('shadow'));
  const webApp = await startUpstream(echoHandler('web'));
  upstreams.push(app, shadow, webApp);
  const catalog = await procs.sidecar({ service: 'catalog', appPort: app.port, config: writeTempConfig({ version: '1' }) });
  const config = writeTempConfig(webSnapshot('1', catalog.inboundPort, shadow, 'v2', 'no-store'));
  const web = await procs.sidecar({ service: 'web', appPort: webApp.port, config });
  const call = (path: string, headers: Record<string, string> = {}) => send(`${web.outboundUrl}${path}`, { headers: { host: 'catalog', ...headers } });
  const reload = async (version: string, api: string, cacheControl: string) => {
    writeConfigFile(config, webSnapshot(version, catalog.inboundPort, shadow, api, cacheControl));
    await waitUntil(async () => ((await (await fetch(`${web.adminUrl}/config`)).json()) as { version: string }).version === version, { what: `version ${version} applied` });
  };
  return { app, shadow, web, call, reload };
}

describe('route rule rewrite and header changes', () => {
  it('forwards the rewritten path, Host and headers, and changes the answer the caller gets', async () => {
    const { app, shadow, call } = await mesh();
    const r = await call('/api/v2/items/7?page=2', { 'x-debug': '1', 'X-Debug': '2', 'x-api': 'v1', 'x-tag': 'caller', 'x-request-id': 'first' });
    expect(r.status, r.body).toBe(200);
    const seen = JSON.parse(r.body) as Echo;
    expect(seen.path).toBe('/v2/items/7?page=2');
    expect(seen.headers.host).toBe('catalog.internal');
    expect(seen.headers['x-api']).toBe('v2');
    // node joins repeated lines with ", ": the caller's line, then the rule's.
    expect(seen.headers['x-tag']).toBe('caller, a');
    expect(seen.headers['x-debug']).toBeUndefined();
    expect(r.headers['cache-control']).toBe('no-store');
    expect(r.headers.server).toBeUndefined();
    expect(r.headers['x-app']).toBe('catalog');

    // The mirror copy carries the same changes (as Envoy's shadow of the finalized request does).
    await waitUntil(() => shadow.requests.length === 1, { what: 'the mirror copy' });
    const copy = shadow.requests[0]!;
    expect([copy.url, copy.headers.host, copy.headers['x-api'], copy.headers['x-tag'], copy.headers['x-debug'], copy.headers['x-skein-mirror']]).toEqual(['/v2/items/7?page=2', 'catalog.internal', 'v2', 'caller, a', undefined, '1']);
    expect(app.requests.filter((q) => q.headers['x-request-id'] === 'first')).toHaveLength(1);
  }, 20_000);

  it('sends a retry with the changes made once, not again', async () => {
    const { app, call } = await mesh();
    const r = await call('/api/v2/items', { 'x-fail-once': 'retry-1', 'x-request-id': 'retried' });
    expect(r.status, r.body).toBe(200);
    expect(r.headers['cache-control']).toBe('no-store');
    const tries = app.requests.filter((q) => q.headers['x-request-id'] === 'retried');
    expect(tries.map((q) => [q.url, q.headers.host, q.headers['x-api'], q.headers['x-tag'], q.headers['x-skein-attempt']])).toEqual([
      ['/v2/items', 'catalog.internal', 'v2', 'a', '1'],
      ['/v2/items', 'catalog.internal', 'v2', 'a', '2'],
    ]);
  }, 20_000);

  it('leaves requests of a rule without changes, and the sidecar\'s own answers, as they are', async () => {
    const { call } = await mesh();
    const r = await call('/api/v1/items', { 'x-debug': '1' });
    expect(r.status, r.body).toBe(200);
    const seen = JSON.parse(r.body) as Echo;
    expect([seen.path, seen.headers.host, seen.headers['x-debug'], seen.headers['x-api'], seen.headers['x-tag']]).toEqual(['/api/v1/items', 'catalog', '1', undefined, undefined]);
    expect(r.headers.server).toBe('catalog-app');
    expect(r.headers['cache-control']).toBeUndefined();

    // No endpoint in v3: the caller's sidecar answers itself, and its answer is not changed.
    const own = await call('/none/x');
    expect(own.status).toBe(503);
    expect(own.headers['x-skein-reason']).toBe('no-healthy-endpoints');
    expect(own.headers['cache-control']).toBeUndefined();
  }, 20_000);

  it('changes a WebSocket upgrade\'s request as a request\'s, and leaves its answer as it comes', async () => {
    const { web } = await mesh();
    // The echo app has no upgrade handler: it declines with a 200 saying what it got.
    const head = ['GET /api/v2/ws HTTP/1.1', 'Host: catalog', 'Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Key: MDEyMzQ1Njc4OWFiY2RlZg==', 'Sec-WebSocket-Version: 13', 'x-debug: 1', '', ''].join('\r\n');
    const answer = await rawExchange(Number(new URL(web.outboundUrl).port), head, /\}$/);
    const seen = JSON.parse(answer.slice(answer.indexOf('{'), answer.lastIndexOf('}') + 1)) as Echo;
    expect([seen.path, seen.headers.host, seen.headers['x-api'], seen.headers['x-tag'], seen.headers['x-debug']]).toEqual(['/v2/ws', 'catalog.internal', 'v2', 'a', undefined]);
    // Its answer is spliced back as it comes, declined or not: no response header changes (README).
    expect(answer).toMatch(/\r\nserver: catalog-app\r\n/);
  }, 20_000);

  it('changes them live when the static file is reloaded', async () => {
    const { call, reload } = await mesh();
    expect((JSON.parse((await call('/api/v2/a')).body) as Echo).headers['x-api']).toBe('v2');
    await reload('2', 'v3', 'max-age=60');
    const r = await call('/api/v2/a');
    expect((JSON.parse(r.body) as Echo).headers['x-api']).toBe('v3');
    expect(r.headers['cache-control']).toBe('max-age=60');
  }, 20_000);
});
