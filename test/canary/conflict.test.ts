/**
 * Config writes during a running canary rollout, end to end, all real processes: a control
 * plane, sidecars for `web` (the caller) and `backend` v1 and v2, the `skein` CLI. A write
 * that would change the split or routes the rollout steers is refused 409 naming it (nothing
 * written, the rollout still running, the CLI exiting 1 with that message); writes that do
 * not touch it go through; forced (`--force`, `?force=true`) the write aborts the rollout
 * first, recording why (its state, `skein canary --status`, the control plane's log), and
 * sidecars then route by the forced write.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { CanaryState } from '../../control-plane/canary/controller.js';
import { startControlPlane, type ControlPlaneProcess } from '../control-plane/harness.js';
import { get, skeinCli, startMeshSidecar, type MeshSidecar } from '../identity/mesh.js';
import { apiError, echoHandler, Processes, startUpstream, tempDir, waitUntil, type TestUpstream } from '../support/index.js';

const procs = new Processes();
let cp: ControlPlaneProcess;
let web: MeshSidecar;
const apps: TestUpstream[] = [];
const dir = tempDir('skein-canary-conflict-');

const canary = async () => (await cp.api.get<CanaryState>('/api/v1/canaries/backend')).body;
const routes = async () => (await cp.api.get<{ match?: unknown; split?: Record<string, number> }[]>('/api/v1/routes/backend')).body;
const split = async () => (await routes()).at(-1)!.split;

/** The raw 409 body (the admin client keeps only code, message and problems). */
async function rawError(method: string, path: string, body: unknown): Promise<{ status: number; body: { error: Record<string, unknown> } }> {
  const res = await fetch(`${cp.adminUrl}${path}`, { method, headers: { authorization: `Bearer ${cp.adminToken}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as { error: Record<string, unknown> } };
}

/** Polls until `n` requests web → backend are answered by exactly the apps in `names`. */
async function servedOnlyBy(names: string[], n = 30): Promise<void> {
  await waitUntil(async () => {
    const seen = new Set<string>();
    for (let i = 0; i < n; i++) {
      const r = await get(web, 'backend', '/conflict');
      seen.add(r.status === 200 ? (JSON.parse(r.body) as { name: string }).name : `status ${r.status}`);
    }
    return [...seen].sort().join(',') === [...names].sort().join(',') || undefined;
  }, { timeoutMs: 15_000, intervalMs: 100, what: `traffic served by ${names.join(' and ')}` });
}

function file(name: string, content: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify(content));
  return path;
}

/** A rollout that stays at its first step (25% v2) for the whole test, unless aborted. */
async function startRollout(): Promise<void> {
  const res = await cp.api.post<CanaryState>('/api/v1/canaries/backend', { to: 'v2', steps: [25, 100], interval: '10m' });
  expect(res.body).toMatchObject({ status: 'running', step: 0, weight: 25 });
}

beforeAll(async () => {
  cp = await startControlPlane(procs);
  const app = async (name: string) => {
    const u = await startUpstream(echoHandler(name));
    apps.push(u);
    return u.port;
  };
  [web] = await Promise.all([
    app('web').then((port) => startMeshSidecar(procs, cp, { service: 'web', appPort: port })),
    app('backend-v1').then((port) => startMeshSidecar(procs, cp, { service: 'backend', version: 'v1', appPort: port })),
    app('backend-v2').then((port) => startMeshSidecar(procs, cp, { service: 'backend', version: 'v2', appPort: port })),
  ]);
}, 90_000);

afterAll(async () => {
  await procs.killAll();
  await Promise.all(apps.map((a) => a.close()));
});

beforeEach(async () => {
  await cp.api.delete('/api/v1/canaries/backend').catch(() => undefined);
  await cp.api.put('/api/v1/routes/backend/split', { v1: 100 });
});

describe('config writes during a canary rollout', () => {
  it('a write that would change its split or routes is refused 409 naming the rollout; nothing is written; other writes go through', async () => {
    await startRollout();
    const before = await routes();
    expect(await split()).toEqual({ v1: 75, v2: 25 });

    const refused = await rawError('PUT', '/api/v1/routes/backend/split', { v1: 50, v2: 50 });
    expect(refused.status).toBe(409);
    expect(refused.body.error).toMatchObject({
      code: 'conflict',
      canaries: [{ service: 'backend', from: 'v1', to: 'v2', step: 0, steps: [25, 100], weight: 25, changes: ['the split of its catch-all rule'], abort: 'DELETE /api/v1/canaries/backend' }],
    });
    expect(refused.body.error.message).toMatch(/a canary rollout of backend is running \(v1 → v2, step 1 of 2 at 25% v2\).*nothing was written.*skein canary backend --abort.*\?force=true/);

    expect((await apiError(cp.api.put('/api/v1/routes/backend', [{ split: { v1: 100 } }]))).status).toBe(409);
    expect((await apiError(cp.api.delete('/api/v1/routes/backend'))).status).toBe(409);
    expect((await apiError(cp.api.put('/api/v1/services/backend/policy', { subsets: { v2: { version: 'v1' } } }))).status).toBe(409);
    // The whole file is refused, its intentions with it.
    const mixed = { routes: { backend: [{ split: { v1: 100 } }] }, intentions: { defaultAction: 'allow', rules: [] } };
    const applyRefused = await rawError('POST', '/api/v1/apply', mixed);
    expect(applyRefused.status).toBe(409);
    expect(applyRefused.body.error.canaries).toMatchObject([{ service: 'backend', where: ['routes.backend'] }]);
    expect((await apiError(cp.api.post('/api/v1/apply/check', mixed))).status).toBe(409);
    expect((await cp.api.post('/api/v1/apply/check?force=true', mixed)).body).toEqual({ ok: true, wouldAbortCanaries: ['backend'] });
    expect((await apiError(cp.api.get('/api/v1/intentions'))).status).toBe(404);

    // The CLI: exit 1 with the server's message.
    const cliSplit = await skeinCli(procs, cp, ['split', 'backend', 'v1=50', 'v2=50']);
    expect(cliSplit.code, cliSplit.output).toBe(1);
    expect(cliSplit.output).toMatch(/skein: 409 conflict: a canary rollout of backend is running \(v1 → v2, step 1 of 2 at 25% v2\) and this write would change the split of its catch-all rule; nothing was written\. Abort the rollout first \(skein canary backend --abort/);
    const cliApply = await skeinCli(procs, cp, ['apply', '-f', file('mixed.json', mixed)]);
    expect(cliApply.code, cliApply.output).toBe(1);
    expect(cliApply.output).toMatch(/skein: 409 conflict: a canary rollout of backend is running .* \(routes\.backend\); nothing was written\..*skein apply --force/);

    expect(await routes()).toEqual(before);
    expect(await canary()).toMatchObject({ status: 'running', step: 0, weight: 25 });

    // Not touching it: other services, intentions, the rest of the backend's policy, its routes as they are.
    const untouched = {
      services: { backend: { timeout: '4s' }, other: { timeout: '2s', subsets: { v1: { version: 'v1' } } } },
      routes: { other: [{ split: { v1: 100 } }], backend: before },
      intentions: { defaultAction: 'allow', rules: [] },
    };
    const ok = await skeinCli(procs, cp, ['apply', '-f', file('untouched.json', untouched)]);
    expect(ok.code, ok.output).toBe(0);
    expect((await cp.api.get('/api/v1/intentions')).status).toBe(200);
    expect(await canary()).toMatchObject({ status: 'running', step: 0 });
    await servedOnlyBy(['backend-v1', 'backend-v2']);
  }, 60_000);

  it('skein split --force aborts the rollout first, recording why, then sets the split sidecars route by', async () => {
    await startRollout();
    const forced = await skeinCli(procs, cp, ['split', 'backend', 'v1=100', '--force']);
    expect(forced.code, forced.output).toBe(0);
    expect(forced.output).toMatch(/skein: aborted the canary rollout of backend to set the split \(--force\)/);
    expect(await split()).toEqual({ v1: 100 });
    const state = await canary();
    expect(state.status).toBe('aborted');
    expect(state.reason).toBe('aborted by a forced write (PUT /api/v1/routes/backend/split?force=true) that changes the split of its catch-all rule');
    const status = await skeinCli(procs, cp, ['canary', 'backend', '--status']);
    expect(status.output).toMatch(/backend: v1 → v2 aborted: aborted by a forced write \(PUT \/api\/v1\/routes\/backend\/split\?force=true\)/);
    await waitUntil(() => cp.child.output().includes('aborted by a forced write (PUT /api/v1/routes/backend/split?force=true)') || undefined, { timeoutMs: 5_000, what: 'the control plane to log the forced abort' });
    await servedOnlyBy(['backend-v1']);
  }, 60_000);

  it('skein apply --force aborts the rollout the file touches, then applies the whole file', async () => {
    await startRollout();
    const path = file('forced.json', { routes: { backend: [{ split: { v2: 100 } }] }, intentions: { defaultAction: 'allow', rules: [{ source: 'web', destination: 'backend', action: 'allow' }] } });
    const forced = await skeinCli(procs, cp, ['apply', '-f', path, '--force']);
    expect(forced.code, forced.output).toBe(0);
    expect(forced.output).toMatch(/skein: aborted the canary rollout of backend to apply .*forced\.json \(--force\)/);
    expect(await routes()).toEqual([{ split: { v2: 100 } }]);
    expect((await cp.api.get<{ rules: unknown[] }>('/api/v1/intentions')).body.rules).toHaveLength(1);
    expect(await canary()).toMatchObject({ status: 'aborted', reason: 'aborted by a forced write (POST /api/v1/apply?force=true: routes.backend) that changes its routes' });
    await servedOnlyBy(['backend-v2']);
  }, 60_000);
});
