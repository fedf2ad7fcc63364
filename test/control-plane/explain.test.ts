/**
 * `skein explain` against a real sidecar: for requests whose method case, method name or
 * repeated headers matter, the rule explain names is the rule the sidecar routes them by. Each
 * rule aborts with its own status (a fault, answered by the sidecar itself), so the status of
 * a request sent through the `web` sidecar, byte for byte, says which rule it matched.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ExplainAnswer } from '../../control-plane/admin-api/explain-routes.js';
import { skeinCli, startMeshSidecar, type MeshSidecar } from '../identity/mesh.js';
import { rawExchange } from '../sidecar/http.js';
import { echoHandler, Processes, startUpstream, waitUntil, type TestUpstream } from '../support/index.js';
import { startControlPlane, type ControlPlaneProcess } from './harness.js';

const procs = new Processes();
let cp: ControlPlaneProcess;
let web: MeshSidecar;
let app: TestUpstream;

/** Rule name → the status its fault answers with. */
const RULES = { search: 460, users: 461, get: 462, rest: 463 } as const;
const abort = (status: number) => ({ abort: { percent: 100, status } });

/** The rule the sidecar routed a request by: its status, from a request written as given. */
async function routed(method: string, headerLines: readonly string[] = []): Promise<string | undefined> {
  const port = new URL(web.outboundUrl).port;
  const head = [`${method} /x HTTP/1.1`, 'Host: backend', ...headerLines, 'Connection: close', '', ''].join('\r\n');
  const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(await rawExchange(Number(port), head, /^HTTP\/1\.1 \d{3} /))![1]);
  return Object.entries(RULES).find(([, s]) => s === status)?.[0] ?? `status ${status}`;
}

async function explained(method: string, headers: readonly string[] = []): Promise<ExplainAnswer> {
  const query = new URLSearchParams({ service: 'backend', method, path: '/x' });
  for (const h of headers) query.append('header', h);
  return (await cp.api.get<ExplainAnswer>(`/api/v1/explain?${query}`)).body;
}

beforeAll(async () => {
  cp = await startControlPlane(procs);
  app = await startUpstream(echoHandler('web'));
  web = await startMeshSidecar(procs, cp, { service: 'web', appPort: app.port });
  await cp.api.put('/api/v1/routes/backend', [
    { name: 'search', match: { method: 'M-SEARCH' }, fault: abort(RULES.search) },
    { name: 'users', match: { headers: { 'x-user': 'a, b' } }, fault: abort(RULES.users) },
    { name: 'get', match: { method: 'GET' }, fault: abort(RULES.get) },
    { name: 'rest', match: { pathPrefix: '/' }, fault: abort(RULES.rest) },
  ]);
  await waitUntil(async () => (await routed('GET')) === 'get' || undefined, { what: 'the web sidecar to route backend by the rules' });
}, 60_000);

afterAll(async () => {
  await procs.killAll();
  await app.close();
});

describe('explain agrees with the sidecar', () => {
  it('on the method, as sent: `get` is not GET (RFC 9110 §9.1), and any token is a method (M-SEARCH)', async () => {
    expect(await routed('get')).toBe('rest');
    const lower = await explained('get');
    expect(lower.matched?.name).toBe('rest');
    expect(lower.request.method).toBe('get');
    expect(lower.skipped.find((s) => s.name === 'get')?.reasons).toEqual(['method get is not GET']);

    expect(await routed('M-SEARCH')).toBe('search');
    expect((await explained('M-SEARCH')).matched?.name).toBe('search');
    const cli = await skeinCli(procs, cp, ['explain', 'backend', 'M-SEARCH', '/x']);
    expect(cli.code, cli.output).toBe(0);
    expect(cli.output).toMatch(/rule 0 "search" matches/);
  });

  it('on a repeated header: its lines joined as the sidecar joins them, not the last one alone', async () => {
    expect(await routed('GET', ['X-User: a', 'X-User: b'])).toBe('users');
    const both = await explained('GET', ['x-user:a', 'X-User: b']);
    expect(both.matched?.name).toBe('users');
    expect(both.request.headers).toEqual({ 'x-user': 'a, b' });
    const cli = await skeinCli(procs, cp, ['explain', 'backend', 'GET', '/x', '-H', 'x-user:a', '-H', 'x-user:b']);
    expect(cli.output).toMatch(/rule 1 "users" matches/);
  });

  it('still refuses what is no method at all', async () => {
    const res = await fetch(`${cp.adminUrl}/api/v1/explain?service=backend&method=${encodeURIComponent('GET X')}`);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string; message: string } }).error).toEqual({ code: 'bad-request', message: expect.stringMatching(/^method must be an HTTP method name.*\(got "GET X"\)$/) });
  });
});
