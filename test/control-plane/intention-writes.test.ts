/**
 * Intention rules that never decide (an earlier rule matches every call they would), on real
 * processes: refused where they are written (PUT, apply through the API and `skein apply -f`,
 * 422 naming the rule, nothing written), but a store an older version wrote with them loads,
 * and is published to real sidecars, which install it as it is; the next `skein intention`
 * edit puts the rules in precedence order, so the exact pair the wildcard hid decides.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { get, skeinCli, startMeshSidecar } from '../identity/mesh.js';
import { apiError, echoHandler, Processes, startUpstream, tempDir, waitUntil, type TestUpstream } from '../support/index.js';
import { startControlPlane } from './harness.js';

const procs = new Processes();
const apps: TestUpstream[] = [];
afterAll(async () => {
  await procs.killAll();
  await Promise.all(apps.map((a) => a.close()));
});

/** As an older CLI left them: `allow gateway orders`, then `deny gateway '*'` put in front of it. */
const HIDDEN = {
  defaultAction: 'allow',
  rules: [
    { source: 'gateway', destination: '*', action: 'deny' },
    { source: 'gateway', destination: 'orders', action: 'allow' },
  ],
};
const NEVER_DECIDES = 'never decides: rule 0 (gateway -> *) matches every call it would';

describe('intention rules that never decide', () => {
  it('are refused by PUT, apply and skein apply -f, naming the rule, with nothing written', async () => {
    const cp = await startControlPlane(procs);
    const before = { defaultAction: 'deny', rules: [{ source: 'users', destination: 'orders', action: 'allow' }] };
    await cp.api.put('/api/v1/intentions', before);

    const put = await apiError(cp.api.put('/api/v1/intentions', HIDDEN));
    expect({ status: put.status, code: put.code, problems: put.problems }).toEqual({ status: 422, code: 'invalid', problems: [`rules[1]: ${NEVER_DECIDES}`] });
    const file = { services: { orders: { timeout: '2s' } }, intentions: HIDDEN };
    for (const path of ['/api/v1/apply', '/api/v1/apply/check']) {
      const refused = await apiError(cp.api.post(path, file));
      expect({ status: refused.status, problems: refused.problems }, path).toEqual({ status: 422, problems: [`intentions.rules[1]: ${NEVER_DECIDES}`] });
    }
    const yaml = join(tempDir(), 'mesh.yaml');
    writeFileSync(yaml, `services:\n  orders: { timeout: 2s }\nintentions: ${JSON.stringify(HIDDEN)}\n`);
    const applied = await skeinCli(procs, cp, ['apply', '-f', yaml]);
    expect(applied.code).toBe(1);
    expect(applied.output).toContain(`intentions.rules[1]: ${NEVER_DECIDES}`);

    expect((await cp.api.get('/api/v1/intentions')).body).toEqual(before);
    expect((await apiError(cp.api.get('/api/v1/services/orders/policy'))).status).toBe(404);
  });

  it('in a store an older version wrote, still load and reach sidecars; the next CLI edit puts the exact pair first', async () => {
    const dataDir = tempDir('skein-cp-');
    writeFileSync(join(dataDir, 'store.json'), JSON.stringify({ format: 1, revision: 1, entries: { intentions: { value: HIDDEN, revision: 1 } } }));
    const cp = await startControlPlane(procs, { dataDir });
    expect((await cp.api.get('/api/v1/intentions')).body).toEqual(HIDDEN);

    const [gatewayApp, ordersApp] = await Promise.all([startUpstream(echoHandler('gateway')), startUpstream(echoHandler('orders'))]);
    apps.push(gatewayApp, ordersApp);
    // Ready means each installed the snapshot pushed to it (one it refused would keep it unready).
    const [gateway, orders] = await Promise.all([
      startMeshSidecar(procs, cp, { service: 'gateway', appPort: gatewayApp.port }),
      startMeshSidecar(procs, cp, { service: 'orders', appPort: ordersApp.port }),
    ]);
    const installed = (await (await fetch(`${orders.adminUrl}/config`)).json()) as { snapshot: { intentions: unknown } };
    expect(installed.snapshot.intentions).toEqual(HIDDEN);
    // It decides as it always did: the wildcard rule, first, denies (once gateway knows where orders is).
    const denied = await waitUntil(async () => {
      const r = await get(gateway, 'orders');
      return r.status === 403 ? r : undefined;
    }, { what: 'gateway -> orders to be denied', timeoutMs: 5_000 });
    expect(denied.reason).toBe('denied');

    const edit = await skeinCli(procs, cp, ['intention', 'allow', 'users', 'catalog']);
    expect(edit.code).toBe(0);
    expect(edit.output).toContain('skein: note: the stored rules were not in precedence order');
    expect((await cp.api.get('/api/v1/intentions')).body).toEqual({
      defaultAction: 'allow',
      rules: [{ source: 'users', destination: 'catalog', action: 'allow' }, HIDDEN.rules[1], HIDDEN.rules[0]],
    });
    await waitUntil(async () => (await get(gateway, 'orders')).status === 200, { what: 'gateway -> orders to be allowed', timeoutMs: 5_000 });
  }, 60_000);
});
