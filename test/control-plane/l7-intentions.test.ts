/**
 * L7 intentions through a real control plane: a PUT is judged by the config schema (422
 * naming the permission at fault), the rules reach real sidecars, which decide gateway's calls
 * to orders per request by its rule's permissions; `skein explain --from` names the permission
 * that decides (or why none matches), and `skein intention` edits keep other rules' permissions.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ExplainAnswer } from '../../control-plane/admin-api/explain-routes.js';
import { skeinCli, startMeshSidecar, type MeshSidecar } from '../identity/mesh.js';
import { send } from '../sidecar/resilience-fixture.js';
import { apiError, echoHandler, Processes, startUpstream, waitUntil, type TestUpstream } from '../support/index.js';
import { startControlPlane, type ControlPlaneProcess } from './harness.js';

const procs = new Processes();
const apps: TestUpstream[] = [];
let cp: ControlPlaneProcess;
let gateway: MeshSidecar;

const GATEWAY_RULE = {
  source: 'gateway',
  destination: 'orders',
  permissions: [
    { action: 'allow', http: { pathPrefix: '/orders', method: ['GET', 'POST'] } },
    { action: 'deny', http: { pathPrefix: '/orders', method: 'DELETE' } },
  ],
};
const INTENTIONS = { defaultAction: 'deny', rules: [GATEWAY_RULE, { source: 'admin', destination: 'orders', action: 'allow' }] };

beforeAll(async () => {
  cp = await startControlPlane(procs);
  const [gatewayApp, ordersApp] = await Promise.all([startUpstream(echoHandler('gateway')), startUpstream(echoHandler('orders'))]);
  apps.push(gatewayApp, ordersApp);
  [gateway] = await Promise.all([startMeshSidecar(procs, cp, { service: 'gateway', appPort: gatewayApp.port }), startMeshSidecar(procs, cp, { service: 'orders', appPort: ordersApp.port })]);
}, 60_000);

afterAll(async () => {
  await procs.killAll();
  await Promise.all(apps.map((a) => a.close()));
});

const call = (method: string, path: string) => send(`${gateway.outboundUrl}${path}`, { method, headers: { host: 'orders' } });

async function explained(method: string, path: string): Promise<ExplainAnswer> {
  const query = new URLSearchParams({ service: 'orders', method, path, source: 'gateway' });
  return (await cp.api.get<ExplainAnswer>(`/api/v1/explain?${query}`)).body;
}

describe('intentions with HTTP permissions through the control plane', () => {
  it('refuses a PUT whose rule or permission is at fault, naming it, with nothing written', async () => {
    const both = await apiError(cp.api.put('/api/v1/intentions', { rules: [{ ...GATEWAY_RULE, action: 'allow' }] }));
    expect({ status: both.status, problems: both.problems }).toEqual({ status: 422, problems: ['rules[0].permissions: give action or permissions, not both: with permissions, the calls none matches get the default action'] });
    const unsafe = await apiError(cp.api.put('/api/v1/intentions', { rules: [{ ...GATEWAY_RULE, permissions: [{ action: 'deny', http: { pathRegex: '/(a+)+' } }] }] }));
    expect(unsafe.status).toBe(422);
    expect(unsafe.problems).toEqual([expect.stringMatching(/^rules\[0\]\.permissions\[0\]\.http\.pathRegex: may backtrack catastrophically/)]);
    expect((await apiError(cp.api.get('/api/v1/intentions'))).status).toBe(404);
  });

  it('reaches the sidecars, which decide each request by the permissions', async () => {
    await cp.api.put('/api/v1/intentions', INTENTIONS);
    await waitUntil(async () => (await call('DELETE', '/orders/1')).status === 403, { what: 'orders to deny DELETE from gateway' });
    expect((await call('GET', '/orders/1')).status).toBe(200);
    const r = await call('DELETE', '/orders/1');
    expect(r.headers['x-skein-reason']).toBe('denied');
    expect(r.headers['proxy-status']).toBe('skein-orders-inbound; error=http_request_denied; details="gateway may not call orders: intention rule 0 permission 1 denies the request"');
    expect((await call('GET', '/inventory')).status).toBe(403);
  });

  it('explains which permission decides, or why none matches', async () => {
    const rule = { index: 0, source: 'gateway', destination: 'orders' };
    expect((await explained('DELETE', '/orders/1')).intention).toEqual({ source: 'gateway', allowed: false, decidedBy: 'permission', rule, permission: { index: 1, action: 'deny' } });
    expect((await explained('GET', '/orders/1')).intention).toEqual({ source: 'gateway', allowed: true, decidedBy: 'permission', rule, permission: { index: 0, action: 'allow' } });
    expect((await explained('PUT', '/inventory')).intention).toEqual({
      source: 'gateway',
      allowed: false,
      decidedBy: 'defaultAction',
      rule,
      unmatchedPermissions: [
        { index: 0, reasons: ['path /inventory does not start with /orders', 'method PUT is not GET or POST'] },
        { index: 1, reasons: ['path /inventory does not start with /orders', 'method PUT is not DELETE'] },
      ],
    });

    const denied = await skeinCli(procs, cp, ['explain', 'orders', 'DELETE', '/orders/1', '--from', 'gateway']);
    expect(denied.code, denied.output).toBe(0);
    expect(denied.output).toContain("intentions: gateway -> orders denied: orders's sidecar answers 403 (x-skein-reason: denied) by permission 1 (deny) of rule 0 (gateway -> orders)\n");
    const unmatched = await skeinCli(procs, cp, ['explain', 'orders', 'PUT', '/inventory', '--from', 'gateway']);
    expect(unmatched.output).toContain('by the default action (deny): no permission of rule 0 (gateway -> orders) matches\n');
    expect(unmatched.output).toContain('    permission 0 does not match: path /inventory does not start with /orders; method PUT is not GET or POST\n');
  });

  it('keeps a rule\'s permissions through a `skein intention` edit of another pair, and shows them in `skein get intentions`', async () => {
    const edit = await skeinCli(procs, cp, ['intention', 'allow', 'users', 'orders']);
    expect(edit.code, edit.output).toBe(0);
    const stored = (await cp.api.get<{ rules: unknown[] }>('/api/v1/intentions')).body;
    expect(stored.rules).toContainEqual(GATEWAY_RULE);
    const got = await skeinCli(procs, cp, ['get', 'intentions', 'gateway']);
    expect(got.output).toContain('allow pathPrefix=/orders method=GET,POST; deny pathPrefix=/orders method=DELETE');
  });
});
