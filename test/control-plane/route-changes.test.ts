/**
 * A route rule's rewrite and header changes through a real control plane: the routes API
 * validates them with the sidecars' schema (422 naming the field), `skein explain` (API and
 * CLI) shows the matched rule's rewritten path, Host and header changes, and sidecars in
 * control-plane mode get them pushed and forward the changed request.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ExplainAnswer } from '../../control-plane/admin-api/explain-routes.js';
import { get, skeinCli, startMeshSidecar } from '../identity/mesh.js';
import { echoHandler, Processes, startUpstream, waitUntil, type TestUpstream } from '../support/index.js';
import { startControlPlane, type ControlPlaneProcess } from './harness.js';

const procs = new Processes();
let cp: ControlPlaneProcess;
const apps: TestUpstream[] = [];

beforeAll(async () => {
  cp = await startControlPlane(procs, { args: ['--resync-hold', '0s'] });
}, 30_000);
afterAll(async () => {
  await procs.killAll();
  await Promise.all(apps.map((a) => a.close()));
});

async function putRoutes(rules: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${cp.adminUrl}/api/v1/routes/catalog`, { method: 'PUT', headers: { 'content-type': 'application/json', authorization: `Bearer ${cp.adminToken}` }, body: JSON.stringify(rules) });
  return { status: res.status, body: await res.json() };
}

const CHANGED = {
  name: 'changed',
  match: { pathPrefix: '/api/v2/' },
  rewrite: { pathPrefix: '/v2/', host: 'catalog.internal' },
  requestHeaders: { set: { 'x-api': 'v2' }, add: { 'x-tag': 'a' }, remove: ['x-debug'] },
  responseHeaders: { set: { 'cache-control': 'no-store' }, remove: ['server'] },
};

describe('route changes through the control plane', () => {
  it('refuses bad changes naming the field, as a sidecar would', async () => {
    const hop = await putRoutes([{ ...CHANGED, requestHeaders: { set: { 'Transfer-Encoding': 'chunked' } } }]);
    expect(hop.status).toBe(422);
    expect(hop.body.error.problems).toEqual([expect.stringMatching(/^\[0\]\.requestHeaders\.set\.Transfer-Encoding: transfer-encoding cannot be changed/)]);
    const exact = await putRoutes([{ match: { path: '/api' }, rewrite: { pathPrefix: '/v2' } }]);
    expect(exact.status).toBe(422);
    expect(exact.body.error.problems).toEqual([expect.stringMatching(/^\[0\]\.rewrite\.pathPrefix: replaces the prefix the rule matched, and this rule's match has an exact path/)]);
    const value = await putRoutes([{ ...CHANGED, responseHeaders: { add: { 'x-a': 'a\r\nset-cookie: x=1' } } }]);
    expect(value.status).toBe(422);
    expect(value.body.error.problems).toEqual([expect.stringMatching(/^\[0\]\.responseHeaders\.add\.x-a: must be printable ASCII, and holds CR or LF/)]);
  });

  it('explains the matched rule\'s rewrite and header changes', async () => {
    expect((await putRoutes([CHANGED, { name: 'rest', match: { pathPrefix: '/' } }])).status).toBe(200);
    const query = new URLSearchParams({ service: 'catalog', method: 'GET', path: '/api/v2/items?page=2' });
    const answer = (await cp.api.get<ExplainAnswer>(`/api/v1/explain?${query}`)).body;
    expect(answer.matched?.name).toBe('changed');
    expect(answer.rewrittenPath).toBe('/v2/items');
    expect(answer.policy?.rewrite).toEqual(CHANGED.rewrite);
    expect(answer.policy?.requestHeaders).toEqual(CHANGED.requestHeaders);
    expect(answer.policy?.responseHeaders).toEqual(CHANGED.responseHeaders);
    const other = (await cp.api.get<ExplainAnswer>('/api/v1/explain?service=catalog&path=/api/v1/x')).body;
    expect([other.matched?.name, other.rewrittenPath, other.policy?.rewrite, other.policy?.requestHeaders]).toEqual(['rest', undefined, undefined, undefined]);

    const cli = await skeinCli(procs, cp, ['explain', 'catalog', 'GET', '/api/v2/items']);
    expect(cli.code, cli.output).toBe(0);
    expect(cli.output).toContain('forwarded with path /v2/items (rewrite.pathPrefix /v2/), Host catalog.internal');
    expect(cli.output).toContain('request headers: remove x-debug; set x-api: v2; add x-tag: a');
    expect(cli.output).toContain("response headers (of the upstream's answers, not the sidecar's own): remove server; set cache-control: no-store");
  }, 20_000);

  it('pushes them to the sidecars, which forward the changed request (an mTLS pair in control-plane mode)', async () => {
    expect((await putRoutes([CHANGED, { name: 'rest', match: { pathPrefix: '/' } }])).status).toBe(200);
    const catalogApp = await startUpstream(echoHandler('catalog'));
    const webApp = await startUpstream(echoHandler('web'));
    apps.push(catalogApp, webApp);
    await startMeshSidecar(procs, cp, { service: 'catalog', appPort: catalogApp.port });
    const web = await startMeshSidecar(procs, cp, { service: 'web', appPort: webApp.port });
    const seen = await waitUntil(async () => {
      const r = await get(web, 'catalog', '/api/v2/items', { 'x-debug': '1' });
      return r.status === 200 ? (JSON.parse(r.body) as { path: string; headers: Record<string, string> }) : undefined;
    }, { what: 'catalog reachable from web' });
    expect([seen.path, seen.headers.host, seen.headers['x-api'], seen.headers['x-tag'], seen.headers['x-debug']]).toEqual(['/v2/items', 'catalog.internal', 'v2', 'a', undefined]);
  }, 60_000);
});
